#!/usr/bin/env python3
"""Makes one Garage cluster of freshly started nodes and gives coffer its access key, through
Garage's admin API (v2): connects the nodes, assigns one zone per node (so replication factor 3
puts a copy in each), applies the layout, imports the key and lets it create buckets (coffer
provision creates them), then waits until the cluster reports itself healthy.

Idempotent: a second run against the same cluster changes nothing. Standard library only, so
it runs from scripts/cluster on the host and from deploy/compose.yaml in a python image.

  garage-init.py --admin URL [URL ...] --rpc HOST:PORT [HOST:PORT ...] \
                 --token ADMIN_TOKEN --key-id GK... --secret HEX [--capacity BYTES]
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def call(base, token, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        base + path,
        method=method,
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as res:
        raw = res.read()
    return json.loads(raw) if raw else None


def wait(what, attempt, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = attempt()
            if result:
                return result
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            sys.exit(f"garage-init: timed out waiting for {what}")
        time.sleep(0.5)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--admin", nargs="+", required=True, help="each node's admin API URL")
    p.add_argument("--rpc", nargs="+", required=True, help="each node's RPC address, same order")
    p.add_argument("--token", required=True)
    p.add_argument("--key-id", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--capacity", type=int, default=1_000_000_000)
    a = p.parse_args()
    if len(a.admin) != len(a.rpc):
        sys.exit("garage-init: one --rpc address per --admin URL")

    def node_id(url):
        info = call(url, a.token, "GET", "/v2/GetNodeInfo?node=self")
        return next(iter(info["success"]))

    ids = [wait(f"the admin API at {url}", lambda url=url: node_id(url)) for url in a.admin]
    first = a.admin[0]
    peers = [f"{i}@{rpc}" for i, rpc in zip(ids[1:], a.rpc[1:])]
    for result in call(first, a.token, "POST", "/v2/ConnectClusterNodes", peers) or []:
        if not result.get("success"):
            sys.exit(f"garage-init: could not connect the nodes: {result.get('error')}")

    layout = call(first, a.token, "GET", "/v2/GetClusterLayout")
    assigned = {r["id"] for r in layout["roles"]}
    if not set(ids) <= assigned:
        roles = [
            {"id": i, "zone": f"zone{n + 1}", "capacity": a.capacity, "tags": []}
            for n, i in enumerate(ids)
            if i not in assigned
        ]
        call(first, a.token, "POST", "/v2/UpdateClusterLayout", {"roles": roles})
        call(first, a.token, "POST", "/v2/ApplyClusterLayout", {"version": layout["version"] + 1})

    try:
        call(first, a.token, "POST", "/v2/ImportKey",
             {"accessKeyId": a.key_id, "secretAccessKey": a.secret, "name": "coffer"})
    except urllib.error.HTTPError as e:
        if e.code != 409:  # already imported
            sys.exit(f"garage-init: ImportKey: {e.code} {e.read().decode(errors='replace')}")
    call(first, a.token, "POST", f"/v2/UpdateKey?id={a.key_id}", {"allow": {"createBucket": True}})

    def healthy():
        h = call(first, a.token, "GET", "/v2/GetClusterHealth")
        return h if h.get("status") == "healthy" and h.get("partitionsAllOk") == h.get("partitions") else None

    health = wait("a healthy cluster", healthy)
    print(f"garage-init: {health['connectedNodes']} nodes, {health['partitionsAllOk']} partitions healthy, key {a.key_id}")


if __name__ == "__main__":
    main()
