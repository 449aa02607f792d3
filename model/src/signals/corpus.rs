//! The labelled corpus (`model/signals/corpus/*.jsonl`) and its fixed split.
//!
//! A record's part is a function of its text alone ([`split_of`]), so adding records never
//! moves old ones between parts. Training and tuning see the corpus only through
//! [`Tuning`], which has no way to hold a test record; the test part is read (through
//! [`part`]) only by `trellis signals eval --part test` for the reported figures.

use super::LabelledText;

/// Which part of the corpus a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Train,
    Dev,
    Test,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Dev => "dev",
            Part::Test => "test",
        }
    }
}

/// FNV-1a, 64 bits: a hash that is the same on every platform and in every release.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The part of the corpus a text belongs to: 60 % train, 20 % dev, 20 % test.
pub fn split_of(text: &str) -> Part {
    match fnv1a(text.trim().as_bytes()) % 10 {
        0..=5 => Part::Train,
        6 | 7 => Part::Dev,
        _ => Part::Test,
    }
}

/// A problem with one line of a corpus file.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// Parses JSON lines of [`LabelledText`] (blank lines skipped), checking each label: a
/// polarity only for a labelled category, never for one other than budget or timeline.
pub fn parse_jsonl(text: &str) -> Result<Vec<LabelledText>, LineError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let error = |message: String| LineError {
            line: i + 1,
            message,
        };
        let record: LabelledText = serde_json::from_str(line).map_err(|e| error(e.to_string()))?;
        if let Some((pointer, message)) = record.problems().into_iter().next() {
            return Err(error(format!("{message} (at {pointer})")));
        }
        out.push(record);
    }
    Ok(out)
}

/// What training and tuning may read: the train and dev parts. Test records given to
/// [`Tuning::new`] are dropped on the way in.
#[derive(Clone, Debug, Default)]
pub struct Tuning {
    pub train: Vec<LabelledText>,
    pub dev: Vec<LabelledText>,
}

impl Tuning {
    pub fn new(records: impl IntoIterator<Item = LabelledText>) -> Tuning {
        let mut tuning = Tuning::default();
        for r in records {
            match split_of(&r.text) {
                Part::Train => tuning.train.push(r),
                Part::Dev => tuning.dev.push(r),
                Part::Test => {}
            }
        }
        tuning
    }

    /// Adds records to the train part whatever their hash: a workspace's own labels.
    pub fn add_training(&mut self, records: impl IntoIterator<Item = LabelledText>) {
        self.train.extend(records);
    }
}

/// The records of one part, for evaluation.
pub fn part(records: &[LabelledText], part: Part) -> Vec<LabelledText> {
    records
        .iter()
        .filter(|r| split_of(&r.text) == part)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_fixed_by_the_text() {
        // FNV-1a test vectors, so the split never changes under anyone's feet.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(split_of("预算已批复"), split_of("  预算已批复 "));
        let parts: Vec<Part> = (0..1000).map(|i| split_of(&format!("text {i}"))).collect();
        let count = |p: Part| parts.iter().filter(|&&q| q == p).count();
        assert!(
            (500..700).contains(&count(Part::Train)),
            "{}",
            count(Part::Train)
        );
        assert!(
            (130..270).contains(&count(Part::Test)),
            "{}",
            count(Part::Test)
        );
    }

    #[test]
    fn bad_labels_name_their_line() {
        let e = parse_jsonl(
            "{\"text\":\"ok\",\"categories\":[]}\n\n{\"text\":\"x\",\"categories\":[\"risk\"],\"polarity\":{\"risk\":\"negative\"}}",
        )
        .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("only budget and timeline"), "{e}");
        let e = parse_jsonl(
            "{\"text\":\"x\",\"categories\":[],\"polarity\":{\"budget\":\"positive\"}}",
        )
        .unwrap_err();
        assert!(e.message.contains("not among the categories"), "{e}");
    }
}
