//! Challenge jobs that look like the traffic a provider serves: chat requests of the kinds
//! people send (questions, explanations, rewrites, summaries of a pasted text, code), with or
//! without a system prompt, of varied lengths, greedy, with a bounded `max_tokens`. They are
//! drawn from a seed a provider cannot know in advance (the validator's key and the epoch's
//! block hash), so a provider cannot tell a probe from a customer by its content, nor prepare
//! answers.

use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Value, json};

const SYSTEMS: &[&str] = &[
    "You are a helpful assistant.",
    "You are a concise assistant. Answer in a few sentences.",
    "You are a friendly tutor who explains things simply.",
];

const TOPICS: &[&str] = &[
    "photosynthesis",
    "the water cycle",
    "how a bicycle stays upright",
    "compound interest",
    "the causes of the seasons",
    "how vaccines work",
    "binary search",
    "the French Revolution",
    "black holes",
    "how to brew good coffee",
    "recursion in programming",
    "the history of the printing press",
    "why the sky is blue",
    "how bread rises",
    "the rules of chess",
];

const TASKS: &[&str] = &[
    "Explain {topic} to a ten-year-old.",
    "What is {topic}? Give a short answer.",
    "Write three bullet points about {topic}.",
    "Write a short poem about {topic}.",
    "List two common misconceptions about {topic}.",
    "Give me a one-paragraph summary of {topic}.",
    "Why does {topic} matter?",
];

const SENTENCES: &[&str] = &[
    "The committee met on Tuesday to discuss the budget for the coming year.",
    "Several members argued that the library needed longer opening hours.",
    "Others pointed out that the heating system was over twenty years old.",
    "After a long debate, they agreed to commission a survey of residents.",
    "The survey will run for six weeks and results are expected in spring.",
    "Local businesses have offered to sponsor a new reading room.",
    "The town's population has grown by nearly a third in a decade.",
    "Volunteers already run a weekly homework club for children.",
];

const CODE: &[&str] = &[
    "def mean(xs):\n    return sum(xs) / len(xs)",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i)",
    "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}",
];

/// One challenge: an OpenAI chat request body without the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub messages: Vec<Value>,
    pub max_tokens: usize,
}

impl Job {
    /// The request body for `model`: greedy, asking for the generated token ids.
    pub fn body(&self, model: &str) -> Value {
        json!({
            "model": model,
            "messages": self.messages,
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "stream": true,
            "stream_options": { "include_usage": true },
            "return_token_ids": true,
        })
    }

    /// The messages as the auditor's chat template takes them.
    pub fn chat_messages(&self) -> Vec<aicoin_inference::Message> {
        self.messages
            .iter()
            .map(|m| aicoin_inference::Message {
                role: m["role"].as_str().unwrap_or_default().to_string(),
                content: m["content"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }
}

/// Draws jobs from a seed.
pub struct JobGenerator {
    rng: StdRng,
    max_tokens: usize,
}

impl JobGenerator {
    pub fn new(seed: [u8; 32], max_tokens: usize) -> Self {
        Self {
            rng: StdRng::from_seed(seed),
            max_tokens: max_tokens.max(1),
        }
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    pub fn next_job(&mut self) -> Job {
        let rng = &mut self.rng;
        let mut messages = Vec::new();
        if rng.random_bool(0.5) {
            messages.push(json!({ "role": "system", "content": SYSTEMS.choose(rng).copied().unwrap_or_default() }));
        }
        let topic = TOPICS.choose(rng).copied().unwrap_or_default();
        let task = TASKS
            .choose(rng)
            .copied()
            .unwrap_or_default()
            .replace("{topic}", topic);
        let content = match rng.random_range(0..4) {
            // A pasted text to summarise, of 2 to 8 sentences.
            0 => {
                let count = rng.random_range(2..=SENTENCES.len());
                let text: Vec<&str> = SENTENCES.choose_multiple(rng, count).copied().collect();
                format!("Summarize this in one sentence:\n\n{}", text.join(" "))
            }
            1 => format!(
                "What does this code do?\n\n{}",
                CODE.choose(rng).copied().unwrap_or_default()
            ),
            // A follow-up in a conversation.
            2 => {
                messages
                    .push(json!({ "role": "user", "content": format!("Tell me about {topic}.") }));
                messages.push(json!({ "role": "assistant", "content": format!("Sure. {topic} is a broad subject; what would you like to know?") }));
                task
            }
            _ => task,
        };
        messages.push(json!({ "role": "user", "content": content }));
        let max_tokens = rng.random_range(self.max_tokens.div_ceil(2)..=self.max_tokens);
        Job {
            messages,
            max_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_follow_their_seed_and_vary() {
        let mut a = JobGenerator::new([1; 32], 16);
        let mut b = JobGenerator::new([1; 32], 16);
        let mut c = JobGenerator::new([2; 32], 16);
        let jobs: Vec<Job> = (0..20).map(|_| a.next_job()).collect();
        assert_eq!(jobs, (0..20).map(|_| b.next_job()).collect::<Vec<_>>());
        assert_ne!(jobs, (0..20).map(|_| c.next_job()).collect::<Vec<_>>());
        assert!(jobs.iter().all(|j| (8..=16).contains(&j.max_tokens)));
        let lengths: std::collections::HashSet<usize> =
            jobs.iter().map(|j| j.body("m").to_string().len()).collect();
        assert!(lengths.len() > 10, "prompt lengths vary");
        let body = jobs[0].body("tiny");
        assert_eq!(body["temperature"], 0);
        assert_eq!(body["return_token_ids"], true);
        assert_eq!(jobs[0].chat_messages().last().unwrap().role, "user");
    }
}
