"""Emulated edge–cloud links: profiles, a userspace link proxy, kernel-mode namespaces, and their calibration.

Two modes emulate the same ``LinkProfile``:

* userspace (any user): ``run_proxy`` starts ``python -m medopt.bench.links.proxy``, an asyncio TCP proxy that
  delays, jitters, rate-limits and (as retransmission delay) "loses" each segment (``shaping``);
* kernel (root): ``KernelLink`` builds two network namespaces joined by a veth pair shaped by ``tbf`` and made
  lossy by nftables; delay and jitter come from the same proxy, run inside the edge namespace (``netns``).

``calibrate`` measures either against the profile. Importing this package does no work; the proxy module itself is
only imported by the process that runs it.
"""

from medopt.bench.links.calibrate import calibrate
from medopt.bench.links.launch import run_proxy
from medopt.bench.links.netns import KernelLink, cleanup_stale
from medopt.bench.links.profiles import LinkError, LinkProfile, get_profile, load_profiles

__all__ = ["KernelLink", "LinkError", "LinkProfile", "calibrate", "cleanup_stale", "get_profile", "load_profiles",
           "run_proxy"]
