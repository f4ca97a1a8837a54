"""A grpcio client run inside a network namespace (`ip netns exec NS python mesh_client.py ...`):
makes calls to TARGET and prints one JSON object per call on stdout, so a test in another
namespace can see what the app on that node saw.

  python mesh_client.py TARGET COUNT [--timeout S] [--report-deadline] [--interval S]

Each line: {"ok": bool, "code": "OK"|status name, "details": str, "seconds": elapsed,
"client_id": the upstream's x-seen-ferry-client-id, "remaining": its x-seen-time-remaining,
"deadline_after": the upstream's x-seen-deadline-at less when this client started the call
(seconds; the clock is shared between namespaces), "t": when the call ended (Unix seconds)}.
"""
import argparse
import json
import sys
import time

import grpc


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("count", type=int)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--report-deadline", action="store_true")
    parser.add_argument("--interval", type=float, default=0.0)
    args = parser.parse_args()
    metadata = [("x-report-deadline", "1")] if args.report_deadline else []
    with grpc.insecure_channel(args.target, options=[("grpc.enable_retries", 0)]) as channel:
        call = channel.unary_unary("/ferry.test.Echo/Unary")
        for i in range(args.count):
            started = time.monotonic()
            started_at = time.time()
            line = {"ok": False, "code": "", "details": "", "client_id": None, "remaining": None, "deadline_after": None}
            try:
                _, rpc = call.with_call(b"mesh-%d" % i, timeout=args.timeout, metadata=metadata)
                seen = dict(rpc.initial_metadata())
                line.update(ok=True, code="OK", client_id=seen.get("x-seen-ferry-client-id"),
                            remaining=float(seen["x-seen-time-remaining"]) if "x-seen-time-remaining" in seen else None,
                            deadline_after=float(seen["x-seen-deadline-at"]) - started_at if "x-seen-deadline-at" in seen else None)
            except grpc.RpcError as e:
                line.update(code=e.code().name, details=e.details() or "")
            line["seconds"] = time.monotonic() - started
            line["t"] = time.time()
            print(json.dumps(line), flush=True)
            if args.interval:
                time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
