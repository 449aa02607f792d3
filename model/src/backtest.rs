//! How well scores rank leads that converted: AUC, lift, calibration by decile, and the
//! ROC and lift curves the studio draws.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A lead's score and what happened to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    pub score: f64,
    /// The model's conversion probability, when it is calibrated.
    pub probability: Option<f64>,
    pub converted: bool,
}

/// One tenth of the leads, best scores first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decile {
    /// 1 = the top-scored tenth.
    pub decile: usize,
    pub leads: usize,
    pub min_score: f64,
    pub max_score: f64,
    pub mean_score: f64,
    /// Mean predicted probability, when the model is calibrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<f64>,
    /// Share of these leads that converted.
    pub observed: f64,
}

/// Conversion among the top `top_percent` of leads, against the base rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LiftPoint {
    pub top_percent: f64,
    pub rate: f64,
    pub lift: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Backtest {
    pub leads: usize,
    pub converted: usize,
    pub base_rate: f64,
    /// Area under the ROC curve: the chance a converted lead outscores one that did not.
    pub auc: f64,
    /// Conversion rate of the top 10% over the base rate.
    pub lift_at_10: f64,
    /// `[false positive rate, true positive rate]`, at most 101 points.
    pub roc: Vec<[f64; 2]>,
    /// At 5%, 10%, … 100%.
    pub lift: Vec<LiftPoint>,
    pub calibration: Vec<Decile>,
}

/// Why there is nothing to measure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BacktestError {
    #[error("no leads to backtest")]
    Empty,
    #[error("every lead has the same outcome ({0}); AUC needs both")]
    OneOutcome(&'static str),
    #[error("a score is not a number")]
    NotANumber,
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Measures `scored`.
pub fn backtest(scored: &[Scored]) -> Result<Backtest, BacktestError> {
    if scored.is_empty() {
        return Err(BacktestError::Empty);
    }
    if scored.iter().any(|s| !s.score.is_finite()) {
        return Err(BacktestError::NotANumber);
    }
    let positives = scored.iter().filter(|s| s.converted).count();
    let negatives = scored.len() - positives;
    if positives == 0 {
        return Err(BacktestError::OneOutcome("none converted"));
    }
    if negatives == 0 {
        return Err(BacktestError::OneOutcome("all converted"));
    }
    let mut by_score: Vec<Scored> = scored.to_vec();
    by_score.sort_by(|a, b| b.score.total_cmp(&a.score));
    let n = by_score.len();
    let base_rate = positives as f64 / n as f64;

    // AUC by ranks (Mann–Whitney), ties sharing their average rank; ROC points at each
    // distinct score.
    let mut rank_sum = 0.0;
    let mut roc = vec![[0.0, 0.0]];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && by_score[j].score == by_score[i].score {
            j += 1;
        }
        // Ranks counted from the bottom: positions n-j+1 ..= n-i.
        let avg_rank = ((n - j + 1) + (n - i)) as f64 / 2.0;
        let group_pos = by_score[i..j].iter().filter(|s| s.converted).count();
        rank_sum += avg_rank * group_pos as f64;
        tp += group_pos;
        fp += (j - i) - group_pos;
        roc.push([fp as f64 / negatives as f64, tp as f64 / positives as f64]);
        i = j;
    }
    let auc = (rank_sum - (positives * (positives + 1)) as f64 / 2.0)
        / (positives as f64 * negatives as f64);
    if roc.len() > 101 {
        let step = (roc.len() - 1) as f64 / 100.0;
        roc = (0..=100)
            .map(|k| roc[((k as f64 * step).round() as usize).min(roc.len() - 1)])
            .collect();
    }
    let roc = roc
        .into_iter()
        .map(|[a, b]| [round4(a), round4(b)])
        .collect();

    let top_rate = |pct: f64| {
        let k = ((n as f64 * pct / 100.0).ceil() as usize).clamp(1, n);
        by_score[..k].iter().filter(|s| s.converted).count() as f64 / k as f64
    };
    let lift: Vec<LiftPoint> = (1..=20)
        .map(|k| {
            let pct = k as f64 * 5.0;
            let rate = top_rate(pct);
            LiftPoint {
                top_percent: pct,
                rate: round4(rate),
                lift: round4(rate / base_rate),
            }
        })
        .collect();

    let calibration = (0..10)
        .filter_map(|d| {
            let (lo, hi) = (n * d / 10, n * (d + 1) / 10);
            let part = &by_score[lo..hi];
            if part.is_empty() {
                return None;
            }
            let len = part.len() as f64;
            let probabilities: Option<Vec<f64>> = part.iter().map(|s| s.probability).collect();
            Some(Decile {
                decile: d + 1,
                leads: part.len(),
                min_score: part.last().map_or(0.0, |s| s.score),
                max_score: part.first().map_or(0.0, |s| s.score),
                mean_score: round4(part.iter().map(|s| s.score).sum::<f64>() / len),
                predicted: probabilities.map(|p| round4(p.iter().sum::<f64>() / len)),
                observed: round4(part.iter().filter(|s| s.converted).count() as f64 / len),
            })
        })
        .collect();

    Ok(Backtest {
        leads: n,
        converted: positives,
        base_rate: round4(base_rate),
        auc: round4(auc),
        lift_at_10: round4(top_rate(10.0) / base_rate),
        roc,
        lift,
        calibration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(score: f64, converted: bool) -> Scored {
        Scored {
            score,
            probability: None,
            converted,
        }
    }

    #[test]
    fn perfect_random_and_inverted_rankings() {
        let perfect: Vec<_> = (0..100).map(|i| s(f64::from(i), i >= 50)).collect();
        assert_eq!(backtest(&perfect).map(|b| b.auc), Ok(1.0));
        let inverted: Vec<_> = (0..100).map(|i| s(f64::from(i), i < 50)).collect();
        assert_eq!(backtest(&inverted).map(|b| b.auc), Ok(0.0));
        let tied: Vec<_> = (0..100).map(|i| s(1.0, i % 2 == 0)).collect();
        assert_eq!(backtest(&tied).map(|b| b.auc), Ok(0.5));
    }

    #[test]
    fn auc_matches_pairwise_counting() {
        let data = [
            s(0.9, true),
            s(0.8, false),
            s(0.8, true),
            s(0.5, false),
            s(0.4, true),
            s(0.1, false),
        ];
        let mut wins = 0.0;
        let mut pairs = 0.0;
        for p in data.iter().filter(|x| x.converted) {
            for q in data.iter().filter(|x| !x.converted) {
                pairs += 1.0;
                wins += if p.score > q.score {
                    1.0
                } else if p.score == q.score {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let b = backtest(&data).unwrap_or_else(|e| panic!("{e}"));
        assert!((b.auc - round4(wins / pairs)).abs() < 1e-9);
        assert_eq!(b.roc.first(), Some(&[0.0, 0.0]));
        assert_eq!(b.roc.last(), Some(&[1.0, 1.0]));
    }

    #[test]
    fn lift_and_deciles() {
        // 1000 leads, the top 100 all converted, 100 more among the rest.
        let data: Vec<_> = (0..1000)
            .map(|i| s(f64::from(1000 - i), i < 100 || i % 9 == 0))
            .collect();
        let b = backtest(&data).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            (b.lift_at_10 - 1.0 / b.base_rate).abs() < 0.01,
            "{}",
            b.lift_at_10
        );
        assert_eq!(b.calibration.len(), 10);
        assert_eq!(b.calibration[0].observed, 1.0);
        assert_eq!(b.calibration.iter().map(|d| d.leads).sum::<usize>(), 1000);
        assert_eq!(b.lift.last().map(|l| l.lift), Some(1.0));
    }

    #[test]
    fn refuses_what_it_cannot_measure() {
        assert_eq!(backtest(&[]), Err(BacktestError::Empty));
        assert!(matches!(
            backtest(&[s(1.0, true), s(2.0, true)]),
            Err(BacktestError::OneOutcome(_))
        ));
        assert_eq!(
            backtest(&[s(f64::NAN, true), s(2.0, false)]),
            Err(BacktestError::NotANumber)
        );
    }
}
