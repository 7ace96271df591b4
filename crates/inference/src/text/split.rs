//! A model whose layers run elsewhere: the embedding and the head here, every transformer
//! layer behind [`RemoteLayers`] (a pipeline of shards on other machines, which the gateway's
//! coordinator chains). Generation, sampling, stop strings and the OpenAI API work on such a
//! model exactly as on a local one; only [`SplitState::forward`]'s middle step crosses the
//! network, as f32 hidden states, so the logits are bit for bit the whole model's.

use std::sync::Arc;

use candle_core::Tensor;

use super::llama::Llama;
use crate::Result;

/// Where a split model's layers run.
pub trait RemoteLayers: Send + Sync + 'static {
    /// A session for one sequence of at most `capacity` tokens, holding its KV caches.
    fn open(&self, capacity: usize) -> Result<Box<dyn LayerSession>>;
}

/// One sequence's pass through every layer, step by step.
pub trait LayerSession: Send {
    /// Every layer over `hidden` (`seq` rows of the model's hidden size, row after row), the
    /// tokens at positions `pos..pos + seq`; the layers' output, of the same shape. A step
    /// from a position already run replaces what followed it.
    fn run(&mut self, hidden: Vec<f32>, pos: usize, seq: usize) -> Result<Vec<f32>>;
}

/// The local part of a split model: its embedding and head.
#[derive(Clone)]
pub(super) struct SplitModel {
    pub(super) ends: Arc<Llama>,
    pub(super) layers: Arc<dyn RemoteLayers>,
}

impl SplitModel {
    pub(super) fn new_state(&self, capacity: usize) -> SplitState {
        SplitState {
            model: self.clone(),
            capacity,
            session: None,
        }
    }
}

/// One sequence on a split model; its session opens at the first step.
pub(super) struct SplitState {
    model: SplitModel,
    capacity: usize,
    session: Option<Box<dyn LayerSession>>,
}

impl SplitState {
    /// The logits after `tokens` (`[1, seq]`) at `pos`.
    pub(super) fn forward(&mut self, tokens: &Tensor, pos: usize) -> Result<Tensor> {
        let ends = &self.model.ends;
        let hidden = ends.embed(tokens)?;
        let (_, seq, width) = hidden.dims3()?;
        let session = match &mut self.session {
            Some(session) => session,
            None => self.session.insert(self.model.layers.open(self.capacity)?),
        };
        let out = session.run(hidden.flatten_all()?.to_vec1::<f32>()?, pos, seq)?;
        let out = Tensor::from_vec(out, (1, seq, width), tokens.device())?;
        Ok(ends.head(&out.narrow(1, seq - 1, 1)?)?.flatten_all()?)
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use candle_core::{Device, quantized::gguf_file};
    use parking_lot::Mutex;

    use super::*;
    use crate::{
        GenerateParams, InferenceError, SamplingParams, Sequence, TextModel, WeightFormat,
        llama::Cache,
    };

    /// Layers run here, in two shards, counting the steps they take.
    struct LocalShards {
        shards: Vec<Arc<Llama>>,
        steps: Arc<Mutex<Vec<(usize, usize)>>>,
    }

    struct LocalSession {
        shards: Vec<(Arc<Llama>, Cache)>,
        steps: Arc<Mutex<Vec<(usize, usize)>>>,
    }

    impl RemoteLayers for LocalShards {
        fn open(&self, capacity: usize) -> Result<Box<dyn LayerSession>> {
            if capacity > 64 {
                return Err(InferenceError::InvalidRequest("too long".into()));
            }
            Ok(Box::new(LocalSession {
                shards: self
                    .shards
                    .iter()
                    .map(|s| (s.clone(), s.new_cache()))
                    .collect(),
                steps: self.steps.clone(),
            }))
        }
    }

    impl LayerSession for LocalSession {
        fn run(&mut self, hidden: Vec<f32>, pos: usize, seq: usize) -> Result<Vec<f32>> {
            self.steps.lock().push((pos, seq));
            let width = hidden.len() / seq;
            let mut x = Tensor::from_vec(hidden, (1, seq, width), &Device::Cpu)?;
            for (shard, cache) in &mut self.shards {
                x = shard.run_layers(&x, pos, cache)?;
            }
            Ok(x.flatten_all()?.to_vec1()?)
        }
    }

    fn shard(path: &std::path::Path, range: Range<usize>) -> Arc<Llama> {
        let mut file = std::fs::File::open(path).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        Arc::new(Llama::from_gguf(&content, &mut file, &Device::Cpu, range).unwrap())
    }

    fn greedy(model: &Arc<TextModel>, max_tokens: usize) -> Result<Vec<u32>> {
        let prompt = model.encode("the pipeline")?;
        let params = GenerateParams {
            max_tokens: Some(max_tokens),
            sampling: SamplingParams::greedy(),
            ignore_eos: true,
            ..GenerateParams::default()
        };
        let mut sequence = Sequence::new(model.clone(), prompt, params)?;
        let mut ids = Vec::new();
        while sequence.finished().is_none() {
            ids.extend(sequence.step()?.token);
        }
        Ok(ids)
    }

    #[test]
    fn a_split_model_generates_what_the_whole_model_generates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        crate::testing::write_tiny_llama(&path, 5).unwrap();
        let whole = Arc::new(
            TextModel::load(&path, "tiny", &Device::Cpu, WeightFormat::AsShipped).unwrap(),
        );
        let steps = Arc::new(Mutex::new(Vec::new()));
        let layers = LocalShards {
            shards: vec![shard(&path, 0..1), shard(&path, 1..2)],
            steps: steps.clone(),
        };
        let split =
            Arc::new(TextModel::load_split(&path, "tiny", &Device::Cpu, Arc::new(layers)).unwrap());
        let expected = greedy(&whole, 12).unwrap();
        assert_eq!(greedy(&split, 12).unwrap(), expected);
        // The prompt in one step, then one step per token but the last.
        let prompt = whole.encode("the pipeline").unwrap().len();
        let mut want = vec![(0, prompt)];
        want.extend((prompt..prompt + 11).map(|pos| (pos, 1)));
        assert_eq!(*steps.lock(), want);
        // The session is opened for the prompt plus max_tokens, and refused past its limit.
        assert!(greedy(&split, 64).is_err());
    }
}
