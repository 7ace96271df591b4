//! Stop sequences over streamed text: text is released as soon as it cannot be the start of a
//! stop sequence, held back while it might be, and cut where one completes (the stop sequence
//! itself is never returned, as in OpenAI's API).

#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Adds newly decoded text; returns what can be released now and whether a stop sequence
    /// completed (everything from it on is dropped).
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.held.push_str(text);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let released = self.held[..at].to_string();
            self.held.clear();
            return (released, true);
        }
        // Hold back the longest tail that is a prefix of a stop sequence.
        let keep = self
            .stops
            .iter()
            .flat_map(|stop| {
                (1..stop.len().min(self.held.len() + 1))
                    .rev()
                    .filter(|&n| stop.is_char_boundary(n))
                    .find(|&n| self.held.ends_with(&stop[..n]))
            })
            .max()
            .unwrap_or(0);
        let split = self.held.len() - keep;
        let released = self.held[..split].to_string();
        self.held.drain(..split);
        (released, false)
    }

    /// What is still held when generation ends for another reason.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], chunks: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for chunk in chunks {
            let (text, stopped) = m.push(chunk);
            out.push_str(&text);
            if stopped {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn stops_split_across_chunks_are_caught_and_cut() {
        assert_eq!(
            run(&["END"], &["Hello E", "N", "D tail"]),
            ("Hello ".into(), true)
        );
        assert_eq!(
            run(&["\n\n", "###"], &["a\n", "b##", "#c"]),
            ("a\nb".into(), true)
        );
        // A partial match that does not complete is released.
        assert_eq!(
            run(&["END"], &["Hello E", "N", "x"]),
            ("Hello ENx".into(), false)
        );
        assert_eq!(run(&[], &["x", "y"]), ("xy".into(), false));
        assert_eq!(run(&["é!"], &["café", "!"]), ("caf".into(), true));
    }
}
