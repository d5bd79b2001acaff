# py_requests.py - the Python row of bench/20-transport.sh: requests.Session
# (keep-alive) plus .json(), what a Python user of the API writes.
#   /usr/bin/python3 py_requests.py METHOD URL BODYFILE SECONDS
# Prints "REQUESTS ELAPSED_S CPU_S" (CPU: process time in the loop).
#   /usr/bin/python3 py_requests.py METHOD URL BODYFILE serve
# Slice mode (bench/transport/lockstep.c drives it): one session, then one
# slice per command on stdin, "t SECONDS" or "n COUNT", each answered with
# "REQUESTS ELAPSED_S CPU_S"; "q" or end of input exits.
import math
import sys
import time

import requests

method, url, bodyfile, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
body = None if bodyfile == "-" else open(bodyfile, "rb").read()
headers = {"Authorization": "Bearer bench-key"}
if body is not None:
    headers["Content-Type"] = "application/json"


def loop(session, end, limit):
    n = 0
    while n < limit and time.monotonic() < end:
        r = session.request(method, url, data=body, headers=headers)
        if r.status_code != 200:
            sys.exit("py_requests: status %d" % r.status_code)
        r.json()
        n += 1
    return n


def report(n, start, cpu):
    sys.stdout.write("%d %.6f %.6f\n" % (n, time.monotonic() - start, time.process_time() - cpu))
    sys.stdout.flush()


if seconds == "serve":
    session = requests.Session()
    for line in iter(sys.stdin.readline, ""):
        words = line.split()
        if not words or words[0] == "q":
            break
        if len(words) != 2 or words[0] not in ("t", "n") or float(words[1]) < 0:
            sys.exit("py_requests: bad command: " + line.strip())
        start, cpu = time.monotonic(), time.process_time()
        if words[0] == "t":
            n = loop(session, start + float(words[1]), math.inf)
        else:
            n = loop(session, math.inf, int(words[1]))
        report(n, start, cpu)
else:
    session = requests.Session()
    start, cpu = time.monotonic(), time.process_time()
    report(loop(session, start + float(seconds), math.inf), start, cpu)
