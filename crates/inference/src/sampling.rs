//! Choosing the next token: greedy (temperature 0, deterministic), or sampling with
//! temperature, top-k and top-p from a seed (candle's `LogitsProcessor`), after OpenAI's logit
//! bias and the repetition (llama.cpp/Hugging Face, multiplicative over the whole context) and
//! presence/frequency (OpenAI, additive over the generated tokens) penalties.

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};

use crate::{InferenceError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 picks the most likely token every time.
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    /// Makes sampling reproducible; random when `None`.
    pub seed: Option<u64>,
    /// 1 is off; above 1 discourages any token already in the context.
    pub repetition_penalty: f32,
    /// OpenAI's: subtracted once from every token already generated.
    pub presence_penalty: f32,
    /// OpenAI's: subtracted per occurrence among the generated tokens.
    pub frequency_penalty: f32,
    /// OpenAI's `logit_bias`: added to these tokens' logits (-100 bans, 100 all but forces).
    pub logit_bias: Vec<(u32, f32)>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: None,
            top_k: None,
            seed: None,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: Vec::new(),
        }
    }
}

fn out_of_range(name: &str, value: impl std::fmt::Display, range: &str) -> InferenceError {
    InferenceError::InvalidRequest(format!("{name} is {value}; it must be {range}"))
}

impl SamplingParams {
    /// The likeliest token every time, nothing else changed: deterministic output.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// The OpenAI API's ranges.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=2.0).contains(&self.temperature) {
            return Err(out_of_range(
                "temperature",
                self.temperature,
                "between 0 and 2",
            ));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(out_of_range("top_p", p, "above 0 and at most 1"));
        }
        if self.top_k == Some(0) {
            return Err(out_of_range("top_k", 0, "at least 1"));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty <= 10.0) {
            return Err(out_of_range(
                "repetition_penalty",
                self.repetition_penalty,
                "above 0 and at most 10",
            ));
        }
        for (name, value) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !(-2.0..=2.0).contains(&value) {
                return Err(out_of_range(name, value, "between -2 and 2"));
            }
        }
        if let Some((token, bias)) = self
            .logit_bias
            .iter()
            .find(|(_, bias)| !(-100.0..=100.0).contains(bias))
        {
            return Err(out_of_range(
                "logit_bias",
                format!("{bias} for token {token}"),
                "between -100 and 100",
            ));
        }
        Ok(())
    }

    fn sampling(&self) -> Sampling {
        let temperature = self.temperature;
        match (temperature, self.top_k, self.top_p) {
            (t, _, _) if t <= 0.0 => Sampling::ArgMax,
            (_, None, None) => Sampling::All { temperature },
            (_, Some(k), None) => Sampling::TopK { k, temperature },
            (_, None, Some(p)) => Sampling::TopP { p, temperature },
            (_, Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
        }
    }
}

/// The sampler of one sequence.
pub struct Sampler {
    params: SamplingParams,
    processor: LogitsProcessor,
    /// How often each generated token occurred.
    generated: HashMap<u32, u32>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let seed = params.seed.unwrap_or_else(rand_seed);
        Self {
            processor: LogitsProcessor::from_sampling(seed, params.sampling()),
            params,
            generated: HashMap::new(),
        }
    }

    fn adjusted(&self) -> bool {
        self.params.repetition_penalty != 1.0
            || self.params.presence_penalty != 0.0
            || self.params.frequency_penalty != 0.0
            || !self.params.logit_bias.is_empty()
    }

    /// The next token given the last position's `logits` and the whole `context`.
    pub fn sample(&mut self, logits: &Tensor, context: &[u32]) -> Result<u32> {
        let logits = logits.to_dtype(DType::F32)?;
        let token = if self.adjusted() {
            let mut values = logits.to_vec1::<f32>()?;
            for &(token, bias) in &self.params.logit_bias {
                if let Some(logit) = values.get_mut(token as usize) {
                    *logit += bias;
                }
            }
            let penalty = self.params.repetition_penalty;
            if penalty != 1.0 {
                let mut seen = std::collections::HashSet::new();
                for &token in context {
                    if seen.insert(token)
                        && let Some(logit) = values.get_mut(token as usize)
                    {
                        *logit = if *logit >= 0.0 {
                            *logit / penalty
                        } else {
                            *logit * penalty
                        };
                    }
                }
            }
            for (&token, &count) in &self.generated {
                if let Some(logit) = values.get_mut(token as usize) {
                    *logit -=
                        self.params.presence_penalty + self.params.frequency_penalty * count as f32;
                }
            }
            let len = values.len();
            self.processor
                .sample(&Tensor::from_vec(values, len, logits.device())?)?
        } else {
            self.processor.sample(&logits)?
        };
        *self.generated.entry(token).or_default() += 1;
        Ok(token)
    }
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    // The std hasher's keys are random per process; hashing the time mixes them per call.
    RandomState::new().hash_one(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn logits(values: &[f32]) -> Tensor {
        Tensor::new(values, &Device::Cpu).unwrap()
    }

    #[test]
    fn logit_bias_bans_and_forces_tokens() {
        let greedy = |bias: Vec<(u32, f32)>| SamplingParams {
            temperature: 0.0,
            logit_bias: bias,
            ..Default::default()
        };
        let l = logits(&[1.0, 3.0, 2.0]);
        assert_eq!(Sampler::new(greedy(vec![])).sample(&l, &[]).unwrap(), 1);
        assert_eq!(
            Sampler::new(greedy(vec![(1, -100.0)]))
                .sample(&l, &[])
                .unwrap(),
            2
        );
        assert_eq!(
            Sampler::new(greedy(vec![(0, 100.0)]))
                .sample(&l, &[])
                .unwrap(),
            0
        );
        assert!(greedy(vec![(0, 101.0)]).validate().is_err());
    }

    #[test]
    fn greedy_picks_the_maximum_and_penalties_move_it() {
        let mut greedy = Sampler::new(SamplingParams {
            temperature: 0.0,
            ..Default::default()
        });
        assert_eq!(greedy.sample(&logits(&[1.0, 3.0, 2.0]), &[]).unwrap(), 1);
        let mut penalized = Sampler::new(SamplingParams {
            temperature: 0.0,
            repetition_penalty: 2.0,
            ..Default::default()
        });
        // Token 1 is in the context: 3.0 / 2 = 1.5 < 2.0.
        assert_eq!(
            penalized.sample(&logits(&[1.0, 3.0, 2.0]), &[1]).unwrap(),
            2
        );
        let mut frequency = Sampler::new(SamplingParams {
            temperature: 0.0,
            frequency_penalty: 1.5,
            ..Default::default()
        });
        assert_eq!(frequency.sample(&logits(&[1.0, 3.0, 2.0]), &[]).unwrap(), 1);
        // Generated once: 3.0 - 1.5 = 1.5 < 2.0.
        assert_eq!(frequency.sample(&logits(&[1.0, 3.0, 2.0]), &[]).unwrap(), 2);
    }

    #[test]
    fn seeded_sampling_is_reproducible() {
        let params = SamplingParams {
            temperature: 1.0,
            top_p: Some(0.9),
            seed: Some(42),
            ..Default::default()
        };
        let values: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let draw = || {
            let mut s = Sampler::new(params.clone());
            (0..20)
                .map(|_| s.sample(&logits(&values), &[]).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
    }

    #[test]
    fn out_of_range_parameters_are_refused() {
        for bad in [
            SamplingParams {
                temperature: 2.5,
                ..Default::default()
            },
            SamplingParams {
                top_p: Some(0.0),
                ..Default::default()
            },
            SamplingParams {
                top_k: Some(0),
                ..Default::default()
            },
            SamplingParams {
                presence_penalty: 3.0,
                ..Default::default()
            },
            SamplingParams {
                repetition_penalty: 0.0,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(SamplingParams::default().validate().is_ok());
    }
}
