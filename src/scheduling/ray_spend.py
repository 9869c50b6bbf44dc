"""The spending cap of a run on a Ray cluster: one SpendCap (src.backends.metering), held by one actor on the
driver's node, that every process of the run reserves against - the driver's own units and every node evaluating
one - so that no node starts a request whose worst case could take the run's spend over --max-cost.

ClusterSpendCap is what the run's LMs hold in place of a local SpendCap (the same methods: reserve / release / add
/ facts, `reached`, `refused`, `spent`). A reservation and the real cost a request adds are answered by the actor
before the request starts (resp. before its record is handed back), so the cap is exact across nodes; a release
is sent without waiting (a release not yet applied only makes another node's next reservation wait a little
longer). A reservation that must wait for requests in flight asks again every WAIT_POLL_S.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from src.backends.metering import SpendCap, SpendCapReached

RECHECK_S = 0.25  # how often a process asks whether another one reached the cap (the engine's stop check)
WAIT = "wait"  # the holder's answer to a reservation that must wait for requests in flight to settle
WAIT_POLL_S = 0.05  # how often a waiting reservation asks again


class _CapHolder:
    """The Ray actor around the run's one SpendCap (one call at a time: its reservations are atomic)."""

    def __init__(self, cap_usd: float, ledger: str | None, spent: float) -> None:
        self.cap = SpendCap(cap_usd, Path(ledger) if ledger else None)
        self.cap.spent = max(self.cap.spent, spent)  # what the driver's cap already counted

    def reserve(self, usd: float, model: str) -> str:
        """'' when held, WAIT when the requests in flight leave no room yet, else the refusal (the cap is then
        marked reached). Never blocks: the actor answers one call at a time, and a release must get through."""
        try:
            return "" if self.cap.try_reserve(usd, model) else WAIT
        except SpendCapReached as exc:
            return str(exc)

    def release(self, usd: float) -> None:
        self.cap.release(usd)

    def add(self, usd: float) -> None:
        self.cap.add(usd)

    def state(self) -> tuple[bool, str, float, float]:
        return self.cap.reached, self.cap.refused, self.cap.spent, self.cap.reserved

    def facts(self) -> dict[str, Any]:
        return self.cap.facts()


class ClusterSpendCap:
    """A handle on the run's cap held by _CapHolder; picklable, so each node's LMs hold one too."""

    def __init__(self, holder: Any, cap_usd: float) -> None:
        self._holder = holder
        self.cap_usd = cap_usd
        self._reached = False
        self._refused = ""
        self._checked = 0.0

    @classmethod
    def start(cls, local: SpendCap) -> ClusterSpendCap:
        """The cluster's cap, started from the run's local one (its cap, ledger and what it already counted), on
        the driver's node (where the ledger file is)."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        holder = ray.remote(num_cpus=0, max_restarts=0)(_CapHolder).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote(
            local.cap_usd, str(local.ledger) if local.ledger else None, local.spent)
        return cls(holder, local.cap_usd)

    def __reduce__(self):
        return (ClusterSpendCap, (self._holder, self.cap_usd))

    def __deepcopy__(self, memo: dict) -> ClusterSpendCap:
        return self  # copies of an LM keep spending against the same cap

    def _get(self, ref: Any) -> Any:
        import ray

        return ray.get(ref)

    def reserve(self, usd: float, model: str) -> None:
        """Hold `usd` for a request about to start, or raise SpendCapReached (the whole run is then at its cap)."""
        refusal = self._get(self._holder.reserve.remote(usd, model))
        while refusal == WAIT:  # the worst cases in flight leave no room yet (src.backends.metering says why)
            time.sleep(WAIT_POLL_S)
            refusal = self._get(self._holder.reserve.remote(usd, model))
        if refusal:
            self._reached = True
            self._refused = self._refused or refusal.split(" (not sent;")[0]
            raise SpendCapReached(refusal)

    def release(self, usd: float) -> None:
        self._holder.release.remote(usd)

    def add(self, usd: float) -> None:
        if usd > 0:  # waited for: a record handed back is already counted wherever its sidecar is written
            self._get(self._holder.add.remote(usd))

    def _state(self) -> tuple[bool, str, float, float]:
        reached, refused, spent, reserved = self._get(self._holder.state.remote())
        self._checked = time.monotonic()
        if reached:
            self._reached, self._refused = True, self._refused or refused
        return reached, refused, spent, reserved

    @property
    def reached(self) -> bool:
        """Whether a request was refused anywhere in the run (asked of the holder until it was)."""
        if not self._reached:
            self._state()
        return self._reached

    def reached_lately(self) -> bool:
        """`reached` as known at most RECHECK_S ago: the engine's check before each example it starts (a node then
        starts no example once another node was refused, without a call to the holder per example)."""
        if not self._reached and time.monotonic() - self._checked >= RECHECK_S:
            self._state()
        return self._reached

    @property
    def refused(self) -> str:
        """The first refusal, in words ('' while none)."""
        if not self._refused:
            self._state()
        return self._refused

    @property
    def spent(self) -> float:
        return self._state()[2]

    @property
    def reserved(self) -> float:
        return self._state()[3]

    def facts(self) -> dict[str, Any]:
        return self._get(self._holder.facts.remote())
