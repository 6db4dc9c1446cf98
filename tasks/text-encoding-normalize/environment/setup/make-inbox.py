"""Writes /app/inbox: the same kind of text saved by different tools in
different encodings, byte-order marks and line endings."""
import os

texts = {
    "menu-paris.txt": ("latin-1", "\n", "Café crème — 3,50 €\nCrêpe au beurre 4,00\nThé à la menthe\n".replace("—", "-").replace(" €", " EUR")),
    "invoice-1252.txt": ("cp1252", "\r\n", "Total: 120 €\n“Thanks” for your order – see you soon…\nRef: ÅBC-ØÆ\n"),
    "notes-utf16.txt": ("utf-16", "\r\n", "Zürich → Genève\nΣ = 42\n日本語のメモ\n"),
    "readme-bom.txt": ("utf-8-sig", "\n", "Straße\nnaïve façade\n"),
    "plain-ascii.txt": ("ascii", "\n", "nothing special here\njust ascii\n"),
    "mac-classic.txt": ("mac_roman", "\r", "Señor Müller\nØresund\n"),
    "already-ok.txt": ("utf-8", "\n", "Ünïcödé already fine\n"),
}
os.makedirs("/app/inbox", exist_ok=True)
for name, (enc, eol, text) in texts.items():
    data = text.replace("\n", eol).encode(enc)
    with open(os.path.join("/app/inbox", name), "wb") as f:
        f.write(data)
with open("/app/inbox/SOURCES.md", "w") as f:
    f.write("Exports from: a French till (ISO-8859-1), a Windows invoicing tool (Windows-1252),\n"
            "a Windows notepad (UTF-16), a Mac editor (UTF-8 with BOM), an old Mac (Mac OS Roman, CR line ends).\n")
