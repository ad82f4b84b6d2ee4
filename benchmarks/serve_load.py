"""`cxr-age-serve` under load, set against `cxr-age-predict` over the same files on the same machine, in one
run: N clients post images to a server on 127.0.0.1 as fast as they are answered, for a fixed time per pass.
Reports requests/s, images/s, p50/p95 latency, errors (anything but 200), the server's resident memory
(first and second half of each pass: flat means no growth), and the folder command's images/s (minus its
start-up) in passes alternated with the server's.

    python benchmarks/serve_load.py --run RUN [--clients 20] [--seconds 30] [--per-request 1] [--repeats 3]

Default images: the embedded sample's 477 real NIH PNGs (256 px).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engines import folder_rate  # noqa: E402 - the folder command's rate, measured as the engines benchmark does


def start_server(run: str, log: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "cxr_age", "serve", run, "--port", "0", *extra],
                               stdout=open(log, "w"), stderr=subprocess.STDOUT)
    while not (found := re.search(r"serving (http://\S+/)", log.read_text())):
        if process.poll() is not None:
            raise SystemExit(log.read_text())
        time.sleep(0.2)
    return process, found.group(1)


def resident_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def load_pass(url: str, images: list[bytes], args: argparse.Namespace, pid: int) -> dict:
    """One pass: `args.clients` threads posting `args.per_request` images each time, for `args.seconds`."""
    latencies: list[float] = []
    statuses: list[int] = []
    memory: list[tuple[float, float]] = []
    start = time.perf_counter()
    stop = start + args.seconds

    def client(index: int) -> None:
        with httpx.Client(timeout=120) as session:
            turn = index
            while time.perf_counter() < stop:
                files = [("files", (f"{turn}-{k}.png", images[(turn + k) % len(images)]))
                         for k in range(args.per_request)]
                sent = time.perf_counter()
                status = session.post(url + "api/predict", files=files).status_code
                latencies.append(time.perf_counter() - sent)
                statuses.append(status)
                turn += args.clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        memory.append((time.perf_counter() - start, resident_mib(pid)))
        time.sleep(0.5)
    elapsed = time.perf_counter() - start
    ok = statuses.count(200)
    half = args.seconds / 2
    return {"requests_s": ok / elapsed, "images_s": ok * args.per_request / elapsed,
            "p50": statistics.median(latencies), "p95": statistics.quantiles(latencies, n=20)[-1],
            "errors": len(statuses) - ok, "requests": len(statuses),
            "rss_first": max(m for t, m in memory if t < half), "rss_second": max(m for t, m in memory if t >= half)}


def _spread(values: list[float], digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f} ({', '.join(f'{v:.{digits}f}' for v in values)})"


def report(passes: list[dict], folder_rates: list[float], args: argparse.Namespace) -> None:
    print(f"{args.clients} clients x {args.per_request} image(s) per request, {args.seconds} s per pass, "
          f"{args.repeats} passes; medians (passes)")
    for key, label, digits in (("requests_s", "requests/s", 1), ("images_s", "images/s", 1),
                               ("p50", "p50 latency s", 2), ("p95", "p95 latency s", 2)):
        print(f"  server {label:>14}: {_spread([p[key] for p in passes], digits)}")
    print(f"  server errors: {sum(p['errors'] for p in passes)} of {sum(p['requests'] for p in passes)} requests")
    print("  server memory MiB, peak of first / second half per pass: "
          + ", ".join(f"{p['rss_first']:.0f} / {p['rss_second']:.0f}" for p in passes))
    print(f"  cxr-age-predict FOLDER images/s: {_spread(folder_rates)}")
    ratios = [p["images_s"] / f for p, f in zip(passes, folder_rates)]
    served = statistics.median([p["images_s"] for p in passes])
    print(f"  server / folder command images/s: {served / statistics.median(folder_rates):.2f} on the medians, "
          f"per pass {', '.join(f'{r:.2f}' for r in ratios)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a finished, evaluated regress run or a bundle")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--per-request", type=int, default=1)
    parser.add_argument("--images", type=int, default=477, help="images in the folder the command predicts")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from cxr_age.paths import sample_image_dir

    sources = sorted(sample_image_dir().glob("*.png"))
    images = [path.read_bytes() for path in sources]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "images"
        folder.mkdir()
        for i in range(args.images):
            (folder / f"{i:05d}.png").symlink_to(sources[i % len(sources)])
        passes, folder_rates = [], []
        for _ in range(args.repeats):
            folder_rates.append(folder_rate(Path(args.run), "keras", folder, args.images))
            process, url = start_server(args.run, Path(scratch) / "server.log", ["--quiet"])
            try:
                load_pass(url, images[:8], argparse.Namespace(**{**vars(args), "seconds": 3}), process.pid)  # warm
                passes.append(load_pass(url, images, args, process.pid))
            finally:
                process.terminate()
                process.wait(30)
    report(passes, folder_rates, args)


if __name__ == "__main__":
    main()
