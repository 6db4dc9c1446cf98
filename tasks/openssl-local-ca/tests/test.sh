#!/usr/bin/env bash
# Verifier: inspects the keys and certificates with openssl: key types,
# names, extensions, validity windows, the chain, the signature, modes.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
P=/app/pki
for f in ca.key ca.crt server.key server.crt; do [ -s $P/$f ] || fail "missing $P/$f"; done
for f in ca.key server.key; do
  m=$(stat -c %a $P/$f); [ $((8#$m & 8#077)) -eq 0 ] || fail "$f has mode $m"
  openssl pkey -in $P/$f -passin pass: -noout 2>/dev/null || fail "$f is unreadable or encrypted"
done
openssl pkey -in $P/ca.key -noout -text 2>/dev/null | grep -q 'Private-Key: (3072 bit' || fail "ca.key is not a 3072-bit key"
openssl pkey -in $P/ca.key -noout -text 2>/dev/null | grep -q '^modulus' || fail "ca.key is not RSA"
openssl pkey -in $P/server.key -noout -text 2>/dev/null | grep -q 'NIST CURVE: P-256\|ASN1 OID: prime256v1' || fail "server.key is not P-256"
ca=$(openssl x509 -in $P/ca.crt -noout -text 2>/dev/null) || fail "ca.crt unreadable"
grep -q 'Subject: CN *= *Preft Internal CA' <<<"$ca" || fail "CA subject"
grep -q 'CA:TRUE' <<<"$ca" || fail "ca.crt is not a CA"
openssl x509 -in $P/ca.crt -noout -checkend $((5 * 365 * 86400 - 86400)) >/dev/null || fail "ca.crt expires within 5 years"
[ "$(openssl x509 -in $P/ca.crt -noout -pubkey | openssl sha256)" = "$(openssl pkey -in $P/ca.key -pubout | openssl sha256)" ] || fail "ca.key does not match ca.crt"
srv=$(openssl x509 -in $P/server.crt -noout -text 2>/dev/null) || fail "server.crt unreadable"
grep -q 'Subject: CN *= *api.internal.test' <<<"$srv" || fail "server subject"
san=$(grep -A1 'Subject Alternative Name' <<<"$srv" | tail -1)
for n in DNS:api.internal.test DNS:localhost 'IP Address:127.0.0.1'; do grep -q "$n" <<<"$san" || fail "SAN lacks $n ($san)"; done
grep -q 'TLS Web Server Authentication' <<<"$srv" || fail "no serverAuth extended key usage"
grep -q 'CA:TRUE' <<<"$srv" && fail "server.crt is a CA"
[ "$(openssl x509 -in $P/server.crt -noout -pubkey | openssl sha256)" = "$(openssl pkey -in $P/server.key -pubout | openssl sha256)" ] || fail "server.key does not match server.crt"
openssl x509 -in $P/server.crt -noout -checkend $((300 * 86400 - 86400)) >/dev/null || fail "server.crt expires within 300 days"
openssl x509 -in $P/server.crt -noout -checkend $((400 * 86400)) >/dev/null && fail "server.crt is valid for more than 400 days"
nb=$(date -d "$(openssl x509 -in $P/server.crt -noout -startdate | cut -d= -f2)" +%s)
[ "$nb" -le "$(date +%s)" ] || fail "server.crt is not valid yet"
openssl verify -CAfile $P/ca.crt $P/server.crt >/dev/null 2>&1 || fail "server.crt does not verify against ca.crt"
sig=/app/release/app-1.4.2.tar.sig
[ -s $sig ] || fail "no signature"
[ "$(sha256sum </app/release/app-1.4.2.tar | cut -c1-64)" = "$(cut -c1-64 /tests/tar.sha256)" ] || fail "the release file changed"
openssl dgst -sha256 -verify <(openssl x509 -in $P/server.crt -pubkey -noout) -signature $sig /app/release/app-1.4.2.tar | grep -q 'Verified OK' || fail "the signature does not verify"
echo PASS
echo 1 >/logs/verifier/reward.txt
