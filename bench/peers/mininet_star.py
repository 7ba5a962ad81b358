"""Times Mininet building and tearing down a 3-host star (3 hosts on one switch), ROUNDS times, and prints
one JSON line per round: {"setup_s": ..., "teardown_s": ...}. bench/peers runs it inside a lab namespace,
so its switch and links are created there, not in the machine's own namespace.

The switch is Mininet's LinuxBridge (no controller): Open vSwitch needs its kernel module and daemons.
Mininet.inited is set before the first network so Mininet's fixLimits() does not raise the machine's global
sysctls (fs.file-max, kernel.pty.max, ...): the lab never changes the host's."""
import json
import sys
import time

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.nodelib import LinuxBridge
from mininet.topo import SingleSwitchTopo


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    setLogLevel("error")
    Mininet.inited = True
    for _ in range(rounds):
        t0 = time.monotonic()
        net = Mininet(topo=SingleSwitchTopo(k=3), switch=LinuxBridge, controller=None, autoSetMacs=True)
        try:
            net.start()
            t1 = time.monotonic()
        finally:
            net.stop()  # also when interrupted (bench-peers sends SIGINT)
        t2 = time.monotonic()
        print(json.dumps({"setup_s": t1 - t0, "teardown_s": t2 - t1}), flush=True)


if __name__ == "__main__":
    main()
