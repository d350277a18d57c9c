//! Serde helpers that write NaN as `null` and read `null` back as NaN, so
//! figures with missing values survive a JSON round trip.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

fn to_opt(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

fn from_opt(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

/// `Vec<f64>` with NaN as `null`.
pub(crate) mod vec {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|&x| to_opt(x))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Option<f64>>::deserialize(d)?
            .into_iter()
            .map(from_opt)
            .collect())
    }
}

/// `Vec<Vec<f64>>` with NaN as `null`.
pub(crate) mod matrix {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[Vec<f64>], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|row| row.iter().map(|&x| to_opt(x)).collect::<Vec<_>>())
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
        Ok(Vec::<Vec<Option<f64>>>::deserialize(d)?
            .into_iter()
            .map(|row| row.into_iter().map(from_opt).collect())
            .collect())
    }
}

/// `Option<(Vec<f64>, Vec<f64>)>` (a band's lower and upper bounds) with NaN
/// as `null`.
pub(crate) mod band {
    use super::*;

    type Bounds = Option<(Vec<f64>, Vec<f64>)>;
    type OptBounds = Option<(Vec<Option<f64>>, Vec<Option<f64>>)>;

    pub fn serialize<S: Serializer>(v: &Bounds, s: S) -> Result<S::Ok, S::Error> {
        let conv = |xs: &[f64]| xs.iter().map(|&x| to_opt(x)).collect::<Vec<_>>();
        v.as_ref().map(|(lo, hi)| (conv(lo), conv(hi))).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bounds, D::Error> {
        let conv = |xs: Vec<Option<f64>>| xs.into_iter().map(from_opt).collect::<Vec<_>>();
        Ok(OptBounds::deserialize(d)?.map(|(lo, hi)| (conv(lo), conv(hi))))
    }
}
