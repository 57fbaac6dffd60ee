"""A workload stand-in for attestation tests (run as a separate process).

    python peer_child.py SOCKET [--uid N --gid N --groups G,...] [--then ACTION]

It drops to the given ids *before* connecting (so SO_PEERCRED records them), connects to
SOCKET, prints ``connected``, then waits for a line on stdin and performs ACTION:
``exit`` (default), ``setuid:N`` (change user, then wait for another line) or
``exec:PATH`` (replace itself with PATH, keeping the connection open).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("socket")
    parser.add_argument("--uid", type=int)
    parser.add_argument("--gid", type=int)
    parser.add_argument("--groups", default="")
    parser.add_argument("--then", default="exit")
    args = parser.parse_args()
    if args.uid is not None:
        os.setgroups([int(g) for g in args.groups.split(",") if g])
        os.setgid(args.gid)
        os.setuid(args.uid)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(args.socket)
    print("connected", flush=True)
    sys.stdin.readline()
    if args.then.startswith("setuid:"):
        os.setuid(int(args.then.partition(":")[2]))
        print("switched", flush=True)
        sys.stdin.readline()
    elif args.then.startswith("exec:"):
        path = args.then.partition(":")[2]
        os.set_inheritable(sock.fileno(), True)
        os.execv(path, [path, "30"])  # noqa: S606 (a fixed test binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
