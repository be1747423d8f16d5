"""A separate process's own scheduling gaps (see sitecustomize.py): ``cpu <end> <ms>`` lines
in the file given, whenever a 1 ms sleep took more than 15 ms. Runs until killed."""

import sys
import time

out = open(sys.argv[1], "w", buffering=1)
last = time.perf_counter()
while True:
    time.sleep(0.001)
    now = time.perf_counter()
    if now - last > 0.015:
        out.write(f"cpu {now:.3f} {1000 * (now - last):.0f}\n")
    last = now
