"""``python crates/python/bench/progress_bench.py``: the per-update cost of facesync's Progress and of tqdm, side by
side in one run.

Both bars do their real work: tqdm writes its bar to ``os.devnull`` (``file=``, default
``mininterval``), facesync's bar runs its dispatcher at 10 Hz with a Python ``on_event`` sink
(which takes the GIL for every event it gets). The same loops run for each, interleaved, best
of ``--repeat`` rounds; the empty loop and a no-op Python method call are printed too, as the
floor that no Python-called progress update can go below.

The last line is ``py-progress-bench: update_vs_tqdm=<x> iter_vs_tqdm=<y>``: how many times
cheaper a facesync ``update(1)`` (and an iterated item) is than tqdm's. A script beside the
package, not in it: the wheel ships no measurement code.
"""

import argparse
import os
import time

from facesync.progress import Progress


class _Noop:
    def update(self, n=1):
        pass


def _time_update(bar, n):
    update = bar.update  # the same call shape for every contender
    start = time.perf_counter_ns()
    for _ in range(n):
        update(1)
    return time.perf_counter_ns() - start


def _time_iter(wrapped):
    start = time.perf_counter_ns()
    for _ in wrapped:
        pass
    return time.perf_counter_ns() - start


def main(argv=None):
    parser = argparse.ArgumentParser(prog="progress_bench.py", description=__doc__)
    parser.add_argument("--n", type=int, default=2_000_000, help="updates per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (best is kept)")
    args = parser.parse_args(argv)
    import tqdm  # imported here: only the benchmark needs it

    n = args.n
    events = []
    devnull = open(os.devnull, "w")
    best = {}

    def keep(name, ns):
        best[name] = min(best.get(name, ns), ns)

    for _ in range(args.repeat):
        keep("empty loop", _time_iter(range(n)))
        keep("no-op method", _time_update(_Noop(), n))

        bar = tqdm.tqdm(total=n, file=devnull)
        keep("tqdm update", _time_update(bar, n))
        bar.close()
        bar = Progress(total=n, console=False, on_event=events.append)
        keep("facesync update", _time_update(bar, n))
        bar.close()

        keep("tqdm iter", _time_iter(tqdm.tqdm(range(n), file=devnull)))
        keep(
            "facesync iter",
            _time_iter(Progress(range(n), console=False, on_event=events.append)),
        )
        if not any(e["type"] == "run_finished" for e in events):
            raise SystemExit("facesync's sink saw no run_finished event: the bar did not report")
        events.clear()

    per = {name: ns / n for name, ns in best.items()}
    for name in ["empty loop", "no-op method", "tqdm update", "facesync update", "tqdm iter",
                 "facesync iter"]:
        print(f"{name}: {per[name]:.1f} ns per update")
    update_ratio = per["tqdm update"] / per["facesync update"]
    iter_ratio = per["tqdm iter"] / per["facesync iter"]
    print(f"py-progress-bench: update_vs_tqdm={update_ratio:.2f} iter_vs_tqdm={iter_ratio:.2f}")


if __name__ == "__main__":
    main()
