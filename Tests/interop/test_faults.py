"""Faults on the upstream side, injected into grpcio upstreams in their own processes (issue 17).
Each asserts counts and who served the calls, with bounds a busy machine keeps; timings of
recovery belong to a bench report."""
import os
import re
import tempfile
import time

from load import Load
from processes import EchoProcess


def endpoint_states(ferry):
    """{endpoint: its failure-accrual state} from /metrics."""
    _, text = ferry.admin("/metrics")
    return {m.group(1): m.group(2) for m in
            re.finditer(r'ferry_endpoint_state\{service="upstream",endpoint="([^"]+)",state="(\w+)"\} 1', text)}


def test_every_endpoint_back_in_rotation_soon_after_a_shared_outage(ferry_factory):
    """All endpoints failing together for 10 s (the fault is not theirs), then recovering: the
    ejection backoffs must not have grown through the outage, and one endpoint's recovery
    lets the others be probed at once. Every endpoint serves again within 2 s (the minimum
    backoff is 1 s); before, the backoffs had grown to 4-16 s, and once the first endpoint
    was back (ending panic mode) it took all traffic while the others waited them out."""
    flag = os.path.join(tempfile.mkdtemp(prefix="ferry-outage-"), "failing")
    open(flag, "w").close()
    upstreams = [EchoProcess(name, "--fail-while", flag) for name in ("a", "b", "c")]
    try:
        ferry = ferry_factory([u.port for u in upstreams], event_loops=1,
                              service_options="    retry: false")
        load = Load(ferry.target, threads=6, timeout=2.0).start()
        time.sleep(10)
        failed_during = len(load.failures)
        os.unlink(flag)
        recovered = time.monotonic()
        all_active_after = None
        while time.monotonic() - recovered < 8:
            states = endpoint_states(ferry)
            if len(states) == 3 and all(state == "active" for state in states.values()):
                all_active_after = time.monotonic() - recovered
                break
            time.sleep(0.05)
        time.sleep(1)
        load.stop()
        assert failed_during > 0, "the outage was not seen"
        assert all_active_after is not None, f"endpoints still ejected 8 s after the recovery: {endpoint_states(ferry)}"
        # The minimum backoff is 1 s (jittered to 0.5-1 s): the first endpoint is probed within
        # it, and its success has the others probed at once.
        assert all_active_after < 2.5, f"every endpoint active again only {all_active_after:.1f} s after the recovery"
        served = {up for t, up in load.events if t >= recovered + all_active_after}
        assert served == {"a", "b", "c"}, f"served after the recovery: {served}"
    finally:
        for u in upstreams:
            u.stop()
