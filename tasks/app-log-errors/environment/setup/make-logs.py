"""Writes /app/logs/app.log, app.log.1 and app.log.2.gz: an application log
with multi-line stack traces, rotated (oldest in .2.gz). Deterministic."""
import datetime
import gzip
import json
import os
import random
import sys

r = random.Random(808)
comps = ["db", "http", "cache", "auth", "billing", "mailer"]
excs = ["java.sql.SQLTimeoutException: query timed out after 30s", "java.io.IOException: Broken pipe",
        "java.lang.NullPointerException", "com.shop.billing.CardDeclinedException: code 51",
        "javax.net.ssl.SSLHandshakeException: PKIX path building failed", "java.util.concurrent.TimeoutException"]
t = datetime.datetime(2024, 7, 1, 9, 58, 0)
entries = []
for i in range(900):
    t += datetime.timedelta(milliseconds=r.randint(50, 4000))
    ts = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    level = r.choices(["INFO", "DEBUG", "WARN", "ERROR"], [60, 20, 12, 8])[0]
    comp = r.choice(comps)
    lines = [f"{ts} {level:<5} [{comp}] " + r.choice(["request handled", "retrying", "slow query", "cache miss", "user login", "sent mail"])]
    exc = None
    if level == "ERROR":
        lines[0] = f"{ts} ERROR [{comp}] " + r.choice(["operation failed", "unhandled exception", "giving up"])
        if r.random() < 0.8:
            exc = r.choice(excs)
            lines.append(exc)
            for d in range(r.randint(1, 4)):
                lines.append(f"\tat com.shop.{comp.capitalize()}.step{d}({comp.capitalize()}.java:{r.randint(10, 400)})")
            if r.random() < 0.3:
                lines.append("Caused by: " + r.choice(excs))
                lines.append("\tat java.base/java.lang.Thread.run(Thread.java:833)")
    elif level == "WARN" and r.random() < 0.2:
        lines.append("java.lang.IllegalStateException: pool nearly exhausted")  # a WARN trace: not an error
        lines.append("\tat com.shop.Pool.get(Pool.java:77)")
    entries.append((ts, level, comp, exc, lines))
if len(sys.argv) > 1:  # the expected report, for the verifier
    errs = [e for e in entries if e[1] == "ERROR"]
    by_comp, by_exc, by_min = {}, {}, {}
    for ts, _, comp, exc, _ in errs:
        by_comp[comp] = by_comp.get(comp, 0) + 1
        name = exc.split(":")[0] if exc else None
        if name:
            by_exc[name] = by_exc.get(name, 0) + 1
        by_min[ts[:16]] = by_min.get(ts[:16], 0) + 1
    busiest = sorted(by_min.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    json.dump({"total_errors": len(errs), "by_component": by_comp, "exceptions": by_exc,
               "first_error": errs[0][0], "last_error": errs[-1][0], "busiest_minute": busiest},
              open(sys.argv[1], "w"), indent=1, sort_keys=True)
    sys.exit(0)
os.makedirs("/app/logs", exist_ok=True)
chunks = [entries[:300], entries[300:620], entries[620:]]
text = ["\n".join(l for e in c for l in e[4]) + "\n" for c in chunks]
with gzip.GzipFile("/app/logs/app.log.2.gz", "wb", mtime=0) as f:
    f.write(text[0].encode())
open("/app/logs/app.log.1", "w").write(text[1])
open("/app/logs/app.log", "w").write(text[2])
