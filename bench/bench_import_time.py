"""How long `import loadmanager` takes, cold, in a fresh interpreter.

Runs `python -X importtime -c "import loadmanager"` several times and reports the
median cumulative microseconds of loadmanager and of its heaviest imports, next
to the interpreter's own start-up. Asserts nothing.

    python bench/bench_import_time.py --repeat 7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def importtime() -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import loadmanager"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    cumulative: dict[str, int] = {}
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:") :].split("|")]
        if parts[1].isdigit():
            cumulative[parts[2].strip()] = int(parts[1])
    return cumulative


def wall(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    runs = [importtime() for _ in range(args.repeat)]
    bare = statistics.median(wall("pass") for _ in range(args.repeat))
    loaded = statistics.median(wall("import loadmanager") for _ in range(args.repeat))
    print(f"# import time, median of {args.repeat}; reproduce: python {' '.join(sys.argv)}")
    own = statistics.median(r.get("loadmanager", 0) for r in runs)
    print(f"loadmanager cumulative: {own / 1000:.1f} ms")
    top = sorted(
        {name for r in runs for name in r if "." not in name and name != "loadmanager"},
        key=lambda n: -statistics.median(r.get(n, 0) for r in runs),
    )[:6]
    for name in top:
        print(f"  {name:<12} {statistics.median(r.get(name, 0) for r in runs) / 1000:8.1f} ms")
    print(
        f"interpreter start: {bare * 1000:.0f} ms; with import loadmanager: {loaded * 1000:.0f} ms"
        f" ({loaded / bare:.2f}x)"
    )


if __name__ == "__main__":
    main()
