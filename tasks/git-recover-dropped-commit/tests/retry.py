import time


def with_retry(fn, attempts=3, delay=0.5):
    """Calls fn() until it succeeds, at most `attempts` times."""
    for i in range(attempts):
        try:
            return fn()
        except OSError:
            if i == attempts - 1:
                raise
            time.sleep(delay * (2 ** i))
