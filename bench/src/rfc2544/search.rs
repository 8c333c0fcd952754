//! RFC 2544 §26.1's throughput search, apart from how a trial is run:
//! `search` asks a closure for each trial, so the bracket logic is tested
//! against simulated paths and generators (below) as well as run through
//! the lab.

use anyhow::{bail, Result};
use serde::Serialize;

/// Passes in a row at the maximum ask that do not raise the bracket before
/// the search gives up on the generator ([`SearchResult::stalled`]).
pub const STALL_TRIALS: u32 = 3;

/// The rate a trial offers: the generator's maximum, or packets a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Offer {
    Max,
    Pps(u64),
}

impl Offer {
    pub(super) fn label(self) -> String {
        match self {
            Offer::Max => "max".into(),
            Offer::Pps(r) => format!("{r} pps"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchConfig {
    /// The search's lower bound; `None`: one resolution step.
    pub min_rate: Option<u64>,
    /// The search ends when the bracket is this percent of its low end;
    /// the default lower bound is this percent of the maximum.
    pub resolution_pct: f64,
    /// Trials in all, the one at the maximum rate included.
    pub max_trials: u32,
}

/// One trial as the search sees it: the offer, what the generator
/// achieved (packets a second actually sent) and the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial<T> {
    pub offer: Offer,
    pub achieved_pps: f64,
    pub pass: bool,
    pub data: T,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult<T> {
    /// What the generator achieved in the trial at its maximum rate.
    pub max_pps: f64,
    pub trials: Vec<Trial<T>>,
    /// The passing trial with the highest achieved rate (index in `trials`).
    pub best: Option<usize>,
    /// The maximum rate passed: the path keeps up with the generator, the
    /// throughput is at least that.
    pub limited_by_generator: bool,
    /// The bracket [highest pass, lowest failure] is within the resolution
    /// (or the lower bound failed); false: `max_trials` ran out first.
    pub converged: bool,
    /// The search stopped because `STALL_TRIALS` passes in a row, asked
    /// for the maximum, did not raise the bracket: the generator cannot
    /// send more than the low end outside its `--rate max` trial.
    pub stalled: bool,
    /// The search's final bracket in offered packets a second.
    pub bracket: (u64, u64),
    /// The step the search ended at: the resolution's share of the
    /// bracket's low end.
    pub resolution_pps: u64,
    /// Rates tried twice because their verdict contradicted an earlier
    /// one (a pass above a loss or a loss below a pass): a noisy path.
    pub retested: u32,
}

impl<T> SearchResult<T> {
    /// The highest passing offer's rate, in offered packets a second.
    pub fn throughput_rate(&self) -> Option<u64> {
        self.best.map(|i| match self.trials[i].offer {
            Offer::Max => self.max_pps as u64,
            Offer::Pps(r) => r,
        })
    }
}

/// RFC 2544 §26.1's search. `run(offer, n)` runs trial `n` (from 0) and
/// returns (passed, achieved packets a second, what to keep). The first
/// trial is at the maximum; after a loss there, a binary search over
/// offered rates in [lower bound, maximum]; when no trial has passed by the
/// end (resolution reached or one trial left), the lower bound itself is
/// tried, so a path lossy even there reports no throughput.
pub fn search<T>(
    cfg: &SearchConfig,
    mut run: impl FnMut(Offer, usize) -> Result<(bool, f64, T)>,
) -> Result<SearchResult<T>> {
    let cap = cfg.max_trials.max(1) as usize;
    let mut trials = Vec::new();
    let (pass, achieved, data) = run(Offer::Max, 0)?;
    trials.push(Trial {
        offer: Offer::Max,
        achieved_pps: achieved,
        pass,
        data,
    });
    let max = achieved.max(0.0).floor() as u64;
    if max == 0 {
        bail!("the generator sent nothing in the trial at its maximum rate");
    }
    // The default lower bound: the resolution's share of the maximum.
    let floor = ((max as f64 * cfg.resolution_pct / 100.0).round() as u64).max(1);
    // The bracket is narrow enough at the resolution's share of its low
    // end (the rate found), not of the generator's maximum: against a
    // maximum 30 times the path's rate, a step of 1% of the maximum was
    // 30% of the answer.
    let step = |lo: u64| ((lo as f64 * cfg.resolution_pct / 100.0).round() as u64).max(1);
    if pass {
        return Ok(SearchResult {
            max_pps: achieved,
            trials,
            best: Some(0),
            limited_by_generator: true,
            converged: true,
            stalled: false,
            bracket: (max, max),
            resolution_pps: step(max),
            retested: 0,
        });
    }
    let bottom = cfg.min_rate.unwrap_or(floor).clamp(1, max);
    let (mut lo, mut hi) = (bottom, max);
    let mut best = None;
    let mut converged = false;
    let mut retested = 0;
    // Trials whose verdict two others outvoted (see the retest below).
    let mut overruled: Vec<usize> = Vec::new();
    // What the generator sent per packet asked, in the last trial.
    let mut short = 1.0f64;
    let mut stalled = 0;
    // Runs the next trial at `offer`; returns its index.
    let mut trial = |trials: &mut Vec<Trial<T>>, offer| -> Result<usize> {
        let (pass, achieved_pps, data) = run(offer, trials.len())?;
        trials.push(Trial {
            offer,
            achieved_pps,
            pass,
            data,
        });
        Ok(trials.len() - 1)
    };
    while trials.len() < cap {
        let last_chance = trials.len() + 1 == cap;
        if best.is_none() && (last_chance || hi.saturating_sub(lo) <= step(lo)) {
            // Nothing passed yet: the lower bound decides.
            let n = trial(&mut trials, Offer::Pps(lo))?;
            if trials[n].pass {
                best = Some(n);
                converged = hi.saturating_sub(lo) <= step(lo);
            } else {
                hi = lo;
                converged = true;
            }
            break;
        }
        if hi.saturating_sub(lo) <= step(lo) {
            converged = true;
            break;
        }
        let mid = lo + (hi - lo) / 2;
        // Asks for more when the last trial sent less than asked, so what
        // is sent lands near the middle.
        // (never above the maximum: that is `--rate max`'s trial)
        let ask = ((mid as f64 / short).round() as u64).clamp(mid, max);
        let n = trial(&mut trials, Offer::Pps(ask))?;
        let pass = trials[n].pass;
        short = (trials[n].achieved_pps / ask as f64).clamp(0.5, 1.0);
        // The bracket moves to the rate actually offered: a generator
        // short of CPU sends less than asked, and a verdict is about what
        // was sent.
        let offered = sent(&trials[n]);
        // A pass at or above a loss, or a loss at or below a pass: one of
        // the two verdicts is the noise of a busy path. The rate is tried
        // again (if a trial is left) and two verdicts alike decide.
        let contradicts = if pass {
            offered >= hi
        } else {
            offered <= lo && best.is_some()
        };
        if contradicts && trials.len() < cap {
            // The rate this trial sent is tried again, and the majority
            // of the three verdicts about it (the earlier one, this one
            // and the retest) stands; the verdicts outvoted no longer
            // bound the bracket.
            retested += 1;
            let m = trial(&mut trials, Offer::Pps(offered.max(1)))?;
            short = (trials[m].achieved_pps / offered.max(1) as f64).clamp(0.5, 1.0);
            let low = offered.min(sent(&trials[m]));
            match (pass, trials[m].pass) {
                (true, true) => {
                    // The losses at or below this rate were the noise.
                    overruled
                        .extend((0..m).filter(|&i| !trials[i].pass && sent(&trials[i]) <= low));
                    lo = lo.max(low);
                    hi = (0..trials.len())
                        .filter(|&i| !trials[i].pass && !overruled.contains(&i))
                        .map(|i| sent(&trials[i]))
                        .filter(|&r| r > lo)
                        .min()
                        .unwrap_or(max)
                        .max(lo);
                    // The lower of the two; on a tie the retest, whose ask
                    // is the rate sent (trial n's may have been scaled up).
                    let k = if sent(&trials[n]) < sent(&trials[m]) {
                        n
                    } else {
                        m
                    };
                    if best.is_none_or(|b: usize| sent(&trials[b]) < sent(&trials[k])) {
                        best = Some(k);
                    }
                }
                (false, false) => {
                    // The passes that would report this rate or more were
                    // the noise; what passed below it stands.
                    overruled.extend(
                        (0..m).filter(|&i| trials[i].pass && rate_of(&trials[i], max) >= low),
                    );
                    hi = low.max(bottom);
                    best = (0..trials.len())
                        .filter(|&i| trials[i].pass && !overruled.contains(&i))
                        .max_by_key(|&i| sent(&trials[i]));
                    lo = best
                        .map_or(bottom, |b| sent(&trials[b]).max(bottom))
                        .min(hi);
                }
                // This trial's verdict was the noise: the bracket stays.
                _ => overruled.push(n),
            }
            stalled = 0;
            continue;
        }
        if pass {
            // Asked for the maximum, sent less, and that is no higher
            // than what already passed: the generator is the limit.
            stalled = if ask == max && offered <= lo {
                stalled + 1
            } else {
                0
            };
            // Without a trial left to retest, a pass at or above a loss
            // closes the bracket there.
            lo = lo.max(offered);
            hi = hi.max(lo);
            if best.is_none_or(|b: usize| sent(&trials[b]) < offered) {
                best = Some(n);
            }
        } else {
            stalled = 0;
            // Likewise a loss at or below a pass, without a retest.
            hi = offered.max(lo);
        }
        if stalled >= STALL_TRIALS {
            break;
        }
    }
    if !converged && best.is_some() && hi.saturating_sub(lo) <= step(lo) {
        converged = true;
    }
    Ok(SearchResult {
        max_pps: achieved_of(&trials),
        trials,
        best,
        limited_by_generator: false,
        converged,
        stalled: stalled >= STALL_TRIALS,
        bracket: (lo, hi),
        resolution_pps: step(lo),
        retested,
    })
}

/// What a trial sent, in packets a second: its ask, or less when the
/// generator fell short (the bracket is in these).
fn sent<T>(t: &Trial<T>) -> u64 {
    let achieved = t.achieved_pps.max(0.0).floor() as u64;
    match t.offer {
        Offer::Max => achieved,
        Offer::Pps(r) => r.min(achieved),
    }
}

/// The rate a passing trial reports as the throughput (its ask, as
/// [`SearchResult::throughput_rate`] does; the maximum's trial: `max`).
fn rate_of<T>(t: &Trial<T>, max: u64) -> u64 {
    match t.offer {
        Offer::Max => max,
        Offer::Pps(r) => r,
    }
}

fn achieved_of<T>(trials: &[Trial<T>]) -> f64 {
    trials.first().map_or(0.0, |t| t.achieved_pps)
}

/// A trial passes when it sent something and lost at most `loss_pct`
/// percent of it.
pub fn passes(sent: u64, received: u64, loss_pct: f64) -> bool {
    let lost = sent.saturating_sub(received);
    sent > 0 && (lost as f64) * 100.0 <= loss_pct * sent as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated path: lossless up to `capacity` pps, beyond that it
    /// delivers only `capacity`; the generator reaches `gen_max` at most.
    fn device(
        capacity: f64,
        gen_max: f64,
        loss_pct: f64,
    ) -> impl FnMut(Offer, usize) -> Result<(bool, f64, f64)> {
        move |offer, _| {
            let rate = match offer {
                Offer::Max => gen_max,
                Offer::Pps(r) => (r as f64).min(gen_max),
            };
            let sent = (rate * 10.0) as u64;
            let received = (rate.min(capacity) * 10.0) as u64;
            Ok((passes(sent, received, loss_pct), rate, rate))
        }
    }

    fn cfg(max_trials: u32) -> SearchConfig {
        SearchConfig {
            min_rate: None,
            resolution_pct: 1.0,
            max_trials,
        }
    }

    #[test]
    fn the_search_converges_to_the_capacity_within_the_resolution() {
        for capacity in [
            10_000.0, 12_345.0, 186_000.0, 499_999.0, 710_000.0, 839_000.0,
        ] {
            let r = search(&cfg(20), device(capacity, 840_000.0, 0.0)).unwrap();
            let found = r.throughput_rate().unwrap() as f64;
            assert!(
                found <= capacity,
                "{capacity}: {found} passed above the capacity"
            );
            assert!(
                capacity - found <= r.resolution_pps as f64,
                "{capacity}: {found} is further than {} below",
                r.resolution_pps
            );
            // The step is 1% of the rate found, not of the maximum.
            assert_eq!(r.resolution_pps, (found / 100.0).round() as u64);
            assert!(r.converged && !r.limited_by_generator);
            assert_eq!(r.trials[0].offer, Offer::Max);
            assert_eq!(r.retested, 0, "a consistent device is never retested");
            // Halvings from the maximum down to that step, plus the first
            // trial and the lower bound's.
            let halvings = (840_000.0 / (capacity / 100.0)).log2().ceil() as usize;
            assert!(
                r.trials.len() <= halvings + 2,
                "{capacity}: {} trials",
                r.trials.len()
            );
            // Every pass is below every failure (a consistent device).
            let lowest_fail = r
                .trials
                .iter()
                .filter(|t| !t.pass)
                .map(|t| t.achieved_pps)
                .fold(f64::INFINITY, f64::min);
            assert!(r
                .trials
                .iter()
                .filter(|t| t.pass)
                .all(|t| t.achieved_pps < lowest_fail));
        }
    }

    #[test]
    fn a_finer_resolution_gets_closer() {
        let coarse = search(&cfg(64), device(123_456.0, 500_000.0, 0.0)).unwrap();
        let fine = search(
            &SearchConfig {
                resolution_pct: 0.01,
                ..cfg(64)
            },
            device(123_456.0, 500_000.0, 0.0),
        )
        .unwrap();
        let (c, f) = (
            coarse.throughput_rate().unwrap(),
            fine.throughput_rate().unwrap(),
        );
        assert!(123_456 - f <= 50 && f <= 123_456, "{f}");
        assert!(f >= c && fine.trials.len() > coarse.trials.len());
    }

    #[test]
    fn accepted_loss_moves_the_threshold() {
        // 1% loss allowed: the device passes up to capacity / 0.99.
        let r = search(
            &SearchConfig {
                resolution_pct: 0.1,
                ..cfg(40)
            },
            device(99_000.0, 300_000.0, 1.0),
        )
        .unwrap();
        let found = r.throughput_rate().unwrap();
        assert!((99_700..=100_000).contains(&found), "{found}");
    }

    #[test]
    fn a_generator_short_of_its_rate_is_judged_by_what_it_sent() {
        // Sends 80% of what it is asked (a generator short of CPU); the
        // path passes up to 100 kpps of what is actually sent.
        let mut short = |offer: Offer, _| -> Result<(bool, f64, ())> {
            let rate = match offer {
                Offer::Max => 400_000.0,
                Offer::Pps(r) => 0.8 * r as f64,
            };
            Ok((rate <= 100_000.0, rate, ()))
        };
        let r = search(&cfg(40), &mut short).unwrap();
        let best = &r.trials[r.best.unwrap()];
        assert!(best.achieved_pps <= 100_000.0);
        assert!(
            100_000.0 - best.achieved_pps <= r.resolution_pps as f64,
            "{}",
            best.achieved_pps
        );
        assert!(r.converged);
        // The bracket is in sent rates: its top is a loss actually seen.
        assert!(r.bracket.1 > 100_000 && r.bracket.1 - r.bracket.0 <= r.resolution_pps);
        // A loss below a pass (the generator sent 40 kpps when asked for
        // 75 250, and that trial lost by chance) is retested at 40 kpps:
        // it passes, the loss was the noise, the search goes on to the
        // path's 60 kpps.
        let mut spurious_loss = |offer: Offer, n: usize| -> Result<(bool, f64, ())> {
            Ok(match offer {
                Offer::Max => (false, 100_000.0, ()),
                Offer::Pps(_) if n == 2 => (false, 40_000.0, ()),
                Offer::Pps(r) => (r <= 60_000, r as f64, ()),
            })
        };
        let r = search(&cfg(24), &mut spurious_loss).unwrap();
        assert_eq!(r.retested, 1);
        assert_eq!(
            (r.trials[3].offer, r.trials[3].pass),
            (Offer::Pps(40_000), true)
        );
        let found = r.throughput_rate().unwrap();
        assert!((59_400..=60_000).contains(&found), "{found}");
        // A pass that was the noise: the path takes 30 kpps, trial 1 at
        // 50 500 passed by chance; the loss at 40 kpps below it is
        // retested, loses again, and the search starts over below it.
        let mut spurious_pass = |offer: Offer, n: usize| -> Result<(bool, f64, ())> {
            Ok(match offer {
                Offer::Max => (false, 100_000.0, ()),
                Offer::Pps(r) if n == 1 => (true, r as f64, ()),
                Offer::Pps(_) if n == 2 => (false, 40_000.0, ()),
                Offer::Pps(r) => (r <= 30_000, r as f64, ()),
            })
        };
        let r = search(&cfg(24), &mut spurious_pass).unwrap();
        assert_eq!(r.retested, 1);
        assert_eq!(
            (r.trials[3].offer, r.trials[3].pass),
            (Offer::Pps(40_000), false)
        );
        let found = r.throughput_rate().unwrap();
        assert!((29_700..=30_000).contains(&found), "{found}");
        assert!(r.converged);
        // A pass above a loss, retested: the path takes 60 kpps; trial 3
        // sends 60% of its ask (the next ask is scaled up to the maximum)
        // and trial 4 passes there by chance; its retest loses, trial 4
        // is outvoted and the search goes on to 60 kpps.
        let mut chance_pass = |offer: Offer, n: usize| -> Result<(bool, f64, ())> {
            Ok(match offer {
                Offer::Max => (false, 100_000.0, ()),
                Offer::Pps(r) if n == 3 => (true, 0.6 * r as f64, ()),
                Offer::Pps(r) if n == 4 => (true, r as f64, ()),
                Offer::Pps(r) => (r <= 60_000, r as f64, ()),
            })
        };
        let r = search(&cfg(24), &mut chance_pass).unwrap();
        assert_eq!(r.retested, 1);
        assert_eq!(
            (r.trials[4].offer, r.trials[4].pass),
            (Offer::Pps(100_000), true)
        );
        assert_eq!(
            (r.trials[5].offer, r.trials[5].pass),
            (Offer::Pps(100_000), false)
        );
        let found = r.throughput_rate().unwrap();
        assert!((59_400..=60_000).contains(&found), "{found}");
        assert_ne!(r.best, Some(4));
        // The same, but the retest passes too: the losses below (the
        // maximum's trial and trial 2) are outvoted, 100 kpps stands.
        let mut noisy_max = |offer: Offer, n: usize| -> Result<(bool, f64, ())> {
            Ok(match offer {
                Offer::Max => (false, 100_000.0, ()),
                Offer::Pps(r) if n == 2 => (false, r as f64, ()),
                Offer::Pps(r) if n == 3 => (true, 0.6 * r as f64, ()),
                Offer::Pps(r) => (true, r as f64, ()),
            })
        };
        let r = search(&cfg(24), &mut noisy_max).unwrap();
        assert_eq!(r.retested, 1);
        assert_eq!(r.throughput_rate(), Some(100_000));
        assert_eq!(r.best, Some(5), "the retest, on a tie");
        assert_eq!(r.bracket, (100_000, 100_000));
        assert!(r.converged);
    }

    /// A path and a generator that are both noise: verdicts at random,
    /// the generator sending 50% to 120% of what it is asked. The search
    /// does not panic (no bracket arithmetic underflows), never asks above
    /// the maximum, keeps its bracket ordered and within the cap, and its
    /// result is a pass.
    #[test]
    fn random_verdicts_and_rates_keep_the_bracket_ordered() {
        let mut seed = 0x2544_u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed >> 33
        };
        for round in 0..2000 {
            let cap = 2 + (next() % 20) as u32;
            let mut max = 0;
            let r = search(&cfg(cap), |offer, _| {
                let rate = match offer {
                    Offer::Max => {
                        max = 50_000 + next() % 500_000;
                        max as f64
                    }
                    Offer::Pps(r) => {
                        assert!(r <= max, "round {round}: asked {r} above the maximum {max}");
                        r as f64 * (50 + next() % 71) as f64 / 100.0
                    }
                };
                Ok((next() % 2 == 0, rate, ()))
            })
            .unwrap();
            assert!(r.trials.len() <= cap as usize);
            assert!(r.bracket.0 <= r.bracket.1, "round {round}: {:?}", r.bracket);
            if let Some(b) = r.best {
                assert!(r.trials[b].pass);
                assert!(
                    sent(&r.trials[b]) <= r.bracket.1,
                    "round {round}: {:?}",
                    r.bracket
                );
            }
        }
    }

    #[test]
    fn a_generator_that_cannot_reach_its_maximum_again_stops_the_search() {
        // --rate max reached 100 kpps once; asked for a rate it sends at
        // most 90 kpps; the path takes 95 kpps.
        let mut calls = 0;
        let r = search(&cfg(16), |offer, _| {
            calls += 1;
            let rate = match offer {
                Offer::Max => 100_000.0,
                Offer::Pps(r) => (r as f64).min(90_000.0),
            };
            Ok((matches!(offer, Offer::Pps(_)) && rate <= 95_000.0, rate, ()))
        })
        .unwrap();
        assert!(r.stalled && !r.converged);
        assert_eq!(r.bracket, (90_000, 100_000));
        assert!(calls < 16, "{calls} trials");
        assert_eq!(r.trials[r.best.unwrap()].achieved_pps, 90_000.0);
        // Three passes at the maximum ask in a row, no more.
        let at_max = r
            .trials
            .iter()
            .rev()
            .take_while(|t| t.offer == Offer::Pps(100_000))
            .count();
        assert_eq!(at_max, STALL_TRIALS as usize);
    }

    #[test]
    fn a_path_faster_than_the_generator_takes_one_trial() {
        let r = search(&cfg(16), device(1e9, 300_000.0, 0.0)).unwrap();
        assert_eq!(r.trials.len(), 1);
        assert!(r.limited_by_generator && r.converged);
        assert_eq!(r.throughput_rate(), Some(300_000));
    }

    #[test]
    fn a_path_lossy_even_at_the_lowest_rate_has_no_throughput() {
        // Loses 10% at any rate.
        let lossy = |offer: Offer, _| -> Result<(bool, f64, ())> {
            let rate = match offer {
                Offer::Max => 200_000.0,
                Offer::Pps(r) => r as f64,
            };
            let sent = (rate * 5.0) as u64;
            Ok((passes(sent, sent * 9 / 10, 0.0), rate, ()))
        };
        let r = search(&cfg(16), lossy).unwrap();
        assert_eq!(r.throughput_rate(), None);
        assert!(r.converged);
        // The lower bound (one resolution step: 1% of the maximum) was
        // tried last and failed.
        assert_eq!(r.trials.last().map(|t| t.offer), Some(Offer::Pps(2_000)));
        assert!(r.trials.len() <= 16);
        // A configured lower bound is the one tried.
        let r = search(
            &SearchConfig {
                min_rate: Some(500),
                ..cfg(16)
            },
            lossy,
        )
        .unwrap();
        assert_eq!(r.trials.last().map(|t| t.offer), Some(Offer::Pps(500)));
        // Below the lower bound: the capacity is 300, the bound 500.
        let r = search(
            &SearchConfig {
                min_rate: Some(500),
                ..cfg(16)
            },
            device(300.0, 100_000.0, 0.0),
        )
        .unwrap();
        assert_eq!((r.throughput_rate(), r.bracket), (None, (500, 500)));
    }

    #[test]
    fn the_trial_cap_bounds_the_search_and_more_trials_never_find_less() {
        let mut last = 0;
        for cap in 2..=20 {
            let mut calls = 0;
            let mut dev = device(77_777.0, 800_000.0, 0.0);
            let r = search(&cfg(cap), |o, n| {
                calls += 1;
                assert_eq!(n + 1, calls, "trials numbered in order");
                dev(o, n)
            })
            .unwrap();
            assert!(
                r.trials.len() <= cap as usize,
                "cap {cap}: {}",
                r.trials.len()
            );
            assert_eq!(calls, r.trials.len());
            // The last trial is kept for the lower bound: something passes.
            let found = r.throughput_rate().expect("the lower bound passes");
            assert!(found >= last, "cap {cap}: {found} < {last}");
            assert!(found <= 77_777);
            last = found;
            if !r.converged {
                assert!(r.bracket.1 - r.bracket.0 > r.resolution_pps);
            }
        }
        assert!(77_777 - last <= 8_000);
        // With 2 trials: the maximum, then the lower bound.
        let r = search(&cfg(2), device(77_777.0, 800_000.0, 0.0)).unwrap();
        assert_eq!(
            r.trials.iter().map(|t| t.offer).collect::<Vec<_>>(),
            [Offer::Max, Offer::Pps(8_000)]
        );
        assert!(!r.converged);
    }

    #[test]
    fn a_generator_that_sends_nothing_is_an_error() {
        let r = search(&cfg(16), |_, _| Ok((false, 0.0, ())));
        assert!(r.unwrap_err().to_string().contains("sent nothing"));
    }

    #[test]
    fn errors_of_a_trial_end_the_search() {
        let r = search(&cfg(16), |o, _| match o {
            Offer::Max => Ok((false, 1000.0, ())),
            Offer::Pps(_) => bail!("gen: boom"),
        });
        assert_eq!(r.unwrap_err().to_string(), "gen: boom");
    }

    #[test]
    fn verdicts_count_loss_against_what_was_sent() {
        assert!(passes(1000, 1000, 0.0));
        assert!(!passes(1000, 999, 0.0));
        assert!(passes(1000, 990, 1.0));
        assert!(!passes(1000, 989, 1.0));
        assert!(!passes(0, 0, 100.0), "nothing sent is no pass");
        assert!(passes(1000, 1003, 0.0), "duplicates are not negative loss");
    }
}
