//! Percentiles of latency samples, for the server benchmarks.

use serde::Serialize;

/// Percentiles by nearest rank over the samples, in the samples' unit
/// (milliseconds everywhere in this crate): p99 of 200 samples is the 198th
/// smallest, a real measurement, not an interpolation.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    pub fn of(xs: &[f64]) -> Summary {
        let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return Summary {
                min: f64::NAN,
                p50: f64::NAN,
                p90: f64::NAN,
                p99: f64::NAN,
                max: f64::NAN,
                mean: f64::NAN,
                ..Summary::default()
            };
        }
        Summary {
            n: v.len(),
            min: v[0],
            p50: rank(&v, 0.50),
            p90: rank(&v, 0.90),
            p99: rank(&v, 0.99),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }
}

/// The nearest-rank percentile `q` (0..=1) of sorted `v`.
fn rank(v: &[f64], q: f64) -> f64 {
    let r = (q * v.len() as f64).ceil() as usize;
    v[r.clamp(1, v.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let xs: Vec<f64> = (1..=200).rev().map(f64::from).collect();
        let s = Summary::of(&xs);
        assert_eq!(
            (s.n, s.min, s.p50, s.p90, s.p99, s.max),
            (200, 1.0, 100.0, 180.0, 198.0, 200.0)
        );
        assert_eq!(Summary::of(&[5.0]).p99, 5.0);
        assert!(Summary::of(&[]).p50.is_nan());
    }
}
