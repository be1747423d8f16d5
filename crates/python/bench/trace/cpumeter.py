"""A separate process's own scheduling gaps (see sitecustomize.py): ``cpu <end> <ms> ...``
lines in the file given, whenever a 1 ms sleep took more than 15 ms, with what both CPUs did
over the gap from ``/proc/stat`` (in ms, summed over the CPUs, 10 ms ticks): ``user``,
``nice`` (facesync's run threads at nice 5 count here), ``system``, ``idle`` and ``steal``
(the hypervisor ran something else on this machine's virtual CPUs). A gap with idle time left
was not CPU starvation; one with steal was the host's doing. Runs until killed."""

import sys
import time


def ticks():
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:9]
    return [int(v) for v in fields]  # user nice system idle iowait irq softirq steal


out = open(sys.argv[1], "w", buffering=1)
last, before = time.perf_counter(), ticks()
while True:
    time.sleep(0.001)
    now, after = time.perf_counter(), ticks()
    if now - last > 0.015:
        d = [10 * (a - b) for a, b in zip(after, before)]
        out.write(f"cpu {now:.3f} {1000 * (now - last):.0f} user={d[0]} nice={d[1]} "
                  f"system={d[2] + d[5] + d[6]} idle={d[3] + d[4]} steal={d[7]}\n")
    last, before = now, after
