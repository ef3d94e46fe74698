"""Peak memory of ``manage.py import_bars`` on a large CSV, against the file's size.

    .venv/bin/python benchmarks/import_memory.py              # a 50 MB file
    .venv/bin/python benchmarks/import_memory.py --mb 200     # memory must not grow with it

Writes a CSV of one-minute bars (consecutive minutes from 2010, about 75 bytes a line, prices
with up to 4 decimals, vwap and trade count) of the given size, then runs the command in a
child process against PostgreSQL (a database of its own, ``quant_bench_import`` unless
``--database-url`` / ``BENCH_DATABASE_URL`` names another; created and migrated when missing,
the benchmark symbol's bars deleted first; migrating runs in a process of its own). The child reports its maximum RSS
(``getrusage``) after Django is set up and the modules loaded ("baseline") and after the
import ("peak"); the parent prints both, the bars stored, the seconds taken and the ratio of
the peak to the file's size (goal: under 300 MB whatever the size). DEBUG is off, as in
production. The last line is JSON for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/quant_bench_import"
SYMBOL = "BENCHIMP"
HEADER = "timestamp,open,high,low,close,volume,vwap,trade_count\n"


def write_csv(path: Path, megabytes: float) -> int:
    """A CSV of about ``megabytes`` MB of sound one-minute bars; returns the number of bars."""
    target = int(megabytes * 1_000_000)
    start = datetime(2010, 1, 4, tzinfo=UTC)
    minute = timedelta(minutes=1)
    written, n = 0, 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(HEADER)
        written += len(HEADER)
        lines: list[str] = []
        while written < target:
            ts = (start + n * minute).strftime("%Y-%m-%dT%H:%M:%SZ")
            base = 100 + (n % 5000) / 100
            line = (
                f"{ts},{base:.2f},{base + 0.5:.2f},{base - 0.5:.2f},{base + 0.25:.4f},"
                f"{1000 + n % 997},{base + 0.1:.4f},{10 + n % 50}\n"
            )
            lines.append(line)
            written += len(line)
            n += 1
            if len(lines) >= 10_000:
                handle.writelines(lines)
                lines = []
        handle.writelines(lines)
    return n


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def prepare(url: str) -> None:
    """Create and migrate the database (in a process of its own: migrating takes memory)."""
    sys.path.insert(0, str(ROOT))
    from tests.support.postgres import benchmark_django_setup

    benchmark_django_setup(url, production=True)


def child(path: str, url: str) -> None:
    """Set up Django, note the baseline, run the command, print JSON."""
    import secrets

    sys.path.insert(0, str(ROOT))
    os.environ.update(DATABASE_URL=url, DEBUG="false", LOG_LEVEL="WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    import django

    django.setup()
    from django.core.management import call_command

    import marketdata.imports  # noqa: F401  (loaded before the baseline, as the command does)
    from marketdata.models import Bar

    Bar.objects.filter(instrument__symbol=SYMBOL).delete()
    baseline = max_rss_mb()
    started, cpu = time.perf_counter(), cpu_seconds()
    call_command("import_bars", path, "--symbol", SYMBOL, "--timeframe", "1Min", verbosity=0)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    stored = Bar.objects.filter(instrument__symbol=SYMBOL).count()
    Bar.objects.filter(instrument__symbol=SYMBOL).delete()
    print(
        json.dumps(
            {
                "baseline_mb": baseline,
                "peak_mb": max_rss_mb(),
                "seconds": seconds,
                "cpu_seconds": cpu,
                "bars": stored,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=50.0, help="size of the CSV (MB)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.database_url)
        return
    if args.child:
        child(args.child, args.database_url)
        return
    subprocess.run(
        [sys.executable, __file__, "--prepare", "--database-url", args.database_url],
        cwd=ROOT,
        check=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bars.csv"
        bars = write_csv(path, args.mb)
        size_mb = path.stat().st_size / 1_000_000
        print(f"file: {size_mb:.1f} MB, {bars:,} one-minute bars")
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "--database-url", args.database_url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        sys.exit(done.returncode)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    peak, baseline = result["peak_mb"], result["baseline_mb"]
    print(
        f"bars stored: {result['bars']:,} in {result['seconds']:.1f} s"
        f" ({result['cpu_seconds']:.1f} s of CPU in the importing process)"
    )
    print(f"peak RSS: {peak:.0f} MB (baseline after set-up {baseline:.0f} MB)")
    print(
        f"peak / file size: {peak / size_mb:.2f}x; import's own growth: "
        f"{peak - baseline:.0f} MB = {(peak - baseline) / size_mb:.2f}x the file"
    )
    print(f"goal peak < 300 MB: {'PASS' if peak < 300 else 'FAIL'}")
    print(json.dumps({"file_mb": size_mb, **result, "ratio": peak / size_mb}))


if __name__ == "__main__":
    main()
