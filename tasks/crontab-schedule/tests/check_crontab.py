"""Checks /app/crontab: expands each job's schedule as cron(8) does
(lists, ranges, steps, names, 7 = Sunday, the day-of-month/day-of-week OR
rule) over every minute of 2025 and compares with the runbook."""
import datetime
import re
import sys

MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
DAYS = "sun mon tue wed thu fri sat".split()


def field(text, lo, hi, names=()):
    out = set()
    for part in text.lower().split(","):
        m = re.fullmatch(r"(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(\d+))?", part)
        if not m:
            raise ValueError(f"bad field {text!r}")
        rng, step = m.group(1), int(m.group(2) or 1)

        def num(s):
            if s in names:
                return names.index(s) + (1 if lo == 1 else 0)
            return int(s)

        if rng == "*":
            a, b = lo, hi
        elif "-" in rng:
            a, b = (num(x) for x in rng.split("-"))
        else:
            a = b = num(rng)
            if m.group(2):
                b = hi
        if step < 1 or a < lo or b > hi or a > b:
            raise ValueError(f"bad range {part!r}")
        out.update(range(a, b + 1, step))
    return out


def schedule(fields):
    minute = field(fields[0], 0, 59)
    hour = field(fields[1], 0, 23)
    dom = field(fields[2], 1, 31)
    mon = field(fields[3], 1, 12, MONTHS)
    dow = {d % 7 for d in field(fields[4], 0, 7, DAYS)}
    dom_star, dow_star = fields[2].startswith("*"), fields[4].startswith("*")
    times = set()
    day = datetime.date(2025, 1, 1)
    while day.year == 2025:
        wd = (day.weekday() + 1) % 7  # 0 = Sunday
        if dom_star or dow_star:
            dmatch = (day.day in dom) and (wd in dow)
        else:
            dmatch = (day.day in dom) or (wd in dow)
        if day.month in mon and dmatch:
            for h in hour:
                for m in minute:
                    times.add((day, h, m))
        day += datetime.timedelta(days=1)
    return times


def want(name):
    ref = {
        "backup": ("30", "2", "*", "*", "1-5"),
        "cleanup": ("*/15", "*", "*", "*", "*"),
        "report": ("0", "6", "1", "*", "*"),
        "rotate": ("45", "23", "*", "*", "0"),
        "sync": ("*/10", "8-17", "*", "*", "1-5"),
    }
    return schedule(ref[name])


def main():
    try:
        lines = open("/app/crontab").read().splitlines()
    except OSError as e:
        sys.exit(f"cannot read /app/crontab: {e}")
    env, jobs, seen_job = {}, {}, False
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line)
        if m and not seen_job:
            env[m.group(1)] = m.group(2).strip().strip('"')
            continue
        parts = line.split(None, 5)
        if len(parts) < 6:
            sys.exit(f"not a job line: {raw!r}")
        seen_job = True
        cmd = parts[5]
        m = re.fullmatch(r"/app/bin/([a-z]+)\.sh\s*>>\s*/var/log/jobs/([a-z]+)\.log\s+2>&1", cmd)
        if not m or m.group(1) != m.group(2):
            sys.exit(f"command not as asked: {cmd!r}")
        try:
            jobs.setdefault(m.group(1), set()).update(schedule(parts[:5]))
        except ValueError as e:
            sys.exit(f"{raw!r}: {e}")
    if env.get("SHELL") != "/bin/bash" or env.get("MAILTO") != "ops@example.com":
        sys.exit(f"SHELL/MAILTO not set before the jobs: {env}")
    for name in ["backup", "cleanup", "report", "rotate", "sync"]:
        if name not in jobs:
            sys.exit(f"no job for {name}.sh")
        w = want(name)
        if jobs[name] != w:
            extra, missing = sorted(jobs[name] - w)[:2], sorted(w - jobs[name])[:2]
            sys.exit(f"{name}: fires at wrong times (extra {extra}, missing {missing})")
    if set(jobs) != {"backup", "cleanup", "report", "rotate", "sync"}:
        sys.exit(f"unexpected jobs: {sorted(jobs)}")


main()
