# py_requests.py - the Python row of bench/20-transport.sh: requests.Session
# (keep-alive) plus .json(), what a Python user of the API writes.
#   /usr/bin/python3 py_requests.py METHOD URL BODYFILE SECONDS
# Prints "REQUESTS ELAPSED_S CPU_S" (CPU: process time in the loop).
import sys
import time

import requests

method, url, bodyfile, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
body = None if bodyfile == "-" else open(bodyfile, "rb").read()
headers = {"Authorization": "Bearer bench-key"}
if body is not None:
    headers["Content-Type"] = "application/json"

session = requests.Session()
n = 0
start, cpu = time.monotonic(), time.process_time()
end = start + seconds
while time.monotonic() < end:
    r = session.request(method, url, data=body, headers=headers)
    if r.status_code != 200:
        sys.exit("py_requests: status %d" % r.status_code)
    r.json()
    n += 1
print(n, "%.6f" % (time.monotonic() - start), "%.6f" % (time.process_time() - cpu))
