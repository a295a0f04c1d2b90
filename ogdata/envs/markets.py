"""Fixed evaluation markets, protocol v1: the same test markets for every algorithm, seed and reference.

Each env id a dataset is made on has two market sets, published as data in
`ogdata/envs/markets-v1.json` (written by scripts/compute_evaluation_markets.py, read by
`market_set`):

- `test`: what every headline number is scored on. Synthetic envs: 2,048 markets of one
  core reset once from a fixed seed — the very markets of the v1 references
  (`references-v1.json`: `episode_returns` with num_envs = 2,048 and seed 0 resets from
  `np.random.default_rng(0).integers(2**63)`). Real-price envs: *every* start date of the
  held-out evaluation years, on the `<id>-eval` id (one market per date).
- `validation`: for anything that selects (checkpoints, hyperparameters), never scored in a
  headline. Synthetic envs: 1,024 markets from another reset seed (`default_rng(2)`; seed 1
  chose the v1 experts). Real-price envs: 1,024 start dates spread evenly over the *training*
  years (every start date where there are fewer: portfolio-ff has 691 training start months): an episode lies wholly inside its period, so no validation episode shares a day of
  returns with a test episode (observation windows may look back across the boundary).

A set is (env id, num_envs, reset seeds) or (env id, start dates): building it is one core
and one reset per round, so scoring 2,048 episodes costs what 2,048 batched steps cost.
The file also stores the reference policies' scores on both sets (paired normalisation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ogdata.envs.registry import OBSERVATION_KWARGS, env_spec, list_envs
from ogdata.errors import EnvError, ReferenceMissingError

MARKETS_V1_FILE = Path(__file__).resolve().with_name("markets-v1.json")
SPLITS = ("validation", "test")
TEST_EPISODES = 2048
VALIDATION_EPISODES = 1024
TEST_SEED = 0  # the seed of the v1 references' markets
VALIDATION_SEED = 2  # not 0 (test) nor 1 (the markets the v1 references chose their experts on)


@dataclass(frozen=True)
class MarketSet:
    """A fixed set of evaluation markets: `rounds` resets of a core of `num_envs` markets."""

    env_id: str  # the id the markets are made of (a real-price test set uses the `-eval` id)
    split: str  # "validation" or "test"
    kind: str  # "seeds" (synthetic) or "start-dates" (real prices: one market per date)
    num_envs: int
    reset_seeds: tuple[int, ...]  # one reset per round
    start_dates: tuple[str, ...] = ()  # "start-dates": the first day of every market

    @property
    def episodes(self) -> int:
        return self.num_envs * len(self.reset_seeds)

    def rounds(self, **obs_kwargs):
        """(core, reset seed) per round; start-date cores are pinned to their dates. `obs_kwargs`: only
        observation-only kwargs (`ogdata.envs.registry.OBSERVATION_KWARGS`), which keep these markets."""
        bad = sorted(set(obs_kwargs) - set(OBSERVATION_KWARGS))
        if bad:
            raise EnvError(f"kwargs {bad} change the markets; a market set takes only {OBSERVATION_KWARGS}")
        core = env_spec(self.env_id).make_core(num_envs=self.num_envs, **obs_kwargs)
        if self.kind == "start-dates":
            pin_start_dates(core, self.start_dates)
        for s in self.reset_seeds:
            yield core, int(s)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"env_id": self.env_id, "kind": self.kind, "num_envs": self.num_envs,
                             "reset_seeds": list(self.reset_seeds), "episodes": self.episodes}
        if self.start_dates:
            d["start_dates"] = list(self.start_dates)
        return d

    @classmethod
    def from_json(cls, split: str, d: dict[str, Any]) -> MarketSet:
        return cls(d["env_id"], split, d["kind"], int(d["num_envs"]), tuple(int(s) for s in d["reset_seeds"]),
                   tuple(d.get("start_dates", ())))


def _paths(core):
    paths = getattr(core, "paths", None)
    if paths is None or paths.dates is None:
        raise EnvError(f"{type(core).__name__} has no dated price history; start dates apply to real-price "
                       "envs (portfolio-sp500*, portfolio-ff*, trading-sp500*, trading-wti*, trading-eurusd*) only")
    return paths


def _label(d) -> str:
    """A start date as published: 'YYYY-MM-DD' for daily and monthly histories, 'YYYY-MM-DDTHH:MM'
    for intraday ones (whose dates carry minutes), so every label is unique and sorts in time."""
    d = np.datetime64(d)
    return str(d)[:10] if np.datetime_data(d.dtype)[0] in ("D", "M", "Y", "W") else str(d.astype("datetime64[m]"))


def start_dates(env_id: str) -> list[str]:
    """Every date an episode of `env_id` can start on (the whole episode inside the id's period)."""
    paths = _paths(env_spec(env_id).make_core(num_envs=1))
    return [_label(paths.dates[r]) for r in range(paths.lo, paths.hi + 1)]


def pin_start_dates(core, dates) -> None:
    """Pin market b of `core` to start on `dates[b]` at every reset (see ReturnPaths.pin_starts)."""
    paths = _paths(core)
    index = {_label(d): i for i, d in enumerate(paths.dates)}
    missing = [d for d in dates if d not in index]
    if missing:
        raise EnvError(f"{len(missing)} start date(s) are not trading days of this env's history, e.g. "
                       f"{missing[:3]}; rebuild the markets with scripts/compute_evaluation_markets.py")
    paths.pin_starts(np.array([index[d] for d in dates], dtype=np.int64))


def is_real(env_id: str) -> bool:
    return env_spec(env_id).kwargs.get("source") == "real"


def evaluation_ids() -> list[str]:
    """The ids that get market sets: every registered id but the `-eval` ids (scored as test sets)."""
    return [i for i in list_envs() if not i.endswith("-eval")]


def design(env_id: str) -> dict[str, MarketSet]:
    """The v1 rule (module docstring) for `env_id`: {"validation": MarketSet, "test": MarketSet}."""
    spec = env_spec(env_id)
    if spec.id.endswith("-eval"):
        raise EnvError(f"{spec.id} is a held-out id: market sets belong to its training id "
                       f"{spec.id[:-len('-eval')]} (whose test set is on {spec.id})")
    if is_real(spec.id):
        test_id = spec.id + "-eval"
        if test_id not in list_envs():
            raise EnvError(f"real-price id {spec.id} has no held-out {test_id} to test on")
        test = start_dates(test_id)
        train = start_dates(spec.id)
        pick = np.unique(np.linspace(0, len(train) - 1, VALIDATION_EPISODES).round().astype(int))
        val = [train[i] for i in pick]
        return {"validation": MarketSet(spec.id, "validation", "start-dates", len(val), (0,), tuple(val)),
                "test": MarketSet(test_id, "test", "start-dates", len(test), (0,), tuple(test))}
    seed = {s: int(np.random.default_rng(k).integers(2**63)) for s, k in (("test", TEST_SEED),
                                                                         ("validation", VALIDATION_SEED))}
    return {"validation": MarketSet(spec.id, "validation", "seeds", VALIDATION_EPISODES, (seed["validation"],)),
            "test": MarketSet(spec.id, "test", "seeds", TEST_EPISODES, (seed["test"],))}


def check_disjoint(sets: dict[str, MarketSet]) -> None:
    """EnvError unless validation and test share no market: different reset seeds (synthetic), or
    (real prices) no shared start date and the validation episodes end before the test ones begin."""
    v, t = sets["validation"], sets["test"]
    if v.kind != t.kind:
        raise EnvError(f"validation ({v.kind}) and test ({t.kind}) markets are of different kinds")
    if v.kind == "seeds":
        same = set(v.reset_seeds) & set(t.reset_seeds)
        if same:
            raise EnvError(f"validation and test markets share reset seeds {sorted(same)}")
        return
    if set(v.start_dates) & set(t.start_dates):
        raise EnvError("validation and test markets share start dates")
    spec = env_spec(v.env_id)
    last_val_start = max(v.start_dates)
    dates = start_dates_all(v.env_id)
    n_steps = int(spec.kwargs.get("n_steps", 252))
    last_val_end = dates[dates.index(last_val_start) + n_steps]
    if last_val_end > min(t.start_dates):
        raise EnvError(f"validation episodes run to {last_val_end}, after the first test start {min(t.start_dates)}")


def start_dates_all(env_id: str) -> list[str]:
    """Every date of the id's loaded history (window before the period included)."""
    return [_label(d) for d in _paths(env_spec(env_id).make_core(num_envs=1)).dates]


# -- the published file ----------------------------------------------------------------------
def load_markets_v1() -> dict[str, Any]:
    """The whole markets document ({} when the file is absent)."""
    if not MARKETS_V1_FILE.exists():
        return {}
    return json.loads(MARKETS_V1_FILE.read_text())


def _entry(env_id: str) -> dict[str, Any]:
    spec = env_spec(env_id)
    eid = spec.id[:-len("-eval")] if spec.id.endswith("-eval") else spec.id
    entry = load_markets_v1().get("envs", {}).get(eid)
    if entry is None:
        raise ReferenceMissingError(f"no v1 evaluation markets recorded for {eid!r}; run `python "
                                    f"scripts/compute_evaluation_markets.py --env {eid}` to compute them")
    return entry


def market_set(env_id: str, split: str = "test") -> MarketSet:
    """The published `split` markets of the id a dataset was made on (an `-eval` id maps to its training id)."""
    if split not in SPLITS:
        raise EnvError(f"unknown split {split!r}; pass one of {SPLITS}")
    return MarketSet.from_json(split, _entry(env_id)[split])


def market_references(env_id: str, split: str = "test") -> dict[str, Any]:
    """The reference policies' scores on the published `split` markets: {"random", "expert",
    "baselines"}, each {"mean", "std", "se", "episodes", "name", "finance"...}."""
    if split not in SPLITS:
        raise EnvError(f"unknown split {split!r}; pass one of {SPLITS}")
    return _entry(env_id)[split]["references"]
