//! Which questions of a dataset a run reads.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::RetrieverError;

/// A split of a dataset's questions. `All`, `Train` and `Test` are the
/// fixed hash partition of sets without split files (`hotpotqa`, `qa`:
/// 80 % / 20 % by query id); a BEIR set's splits are its `qrels/<name>.tsv`
/// files, so `Train` and `Test` name `train.tsv` and `test.tsv` there and
/// any other file is [`Split::Named`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Every question.
    All,
    /// The training part.
    Train,
    /// The held-out part.
    Test,
    /// Another split file of a BEIR set (for example `dev`): letters,
    /// digits, `_`, `-` and `.`, not starting with `.`, so that the name
    /// stays inside the set's `qrels/` folder.
    Named(String),
}

impl Split {
    /// The split's name (a BEIR set's file stem).
    pub fn name(&self) -> &str {
        match self {
            Self::All => "all",
            Self::Train => "train",
            Self::Test => "test",
            Self::Named(name) => name,
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = RetrieverError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "all" => Self::All,
            "train" => Self::Train,
            "test" => Self::Test,
            _ => {
                let plain = !s.is_empty()
                    && s.len() <= 64
                    && !s.starts_with('.')
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if !plain {
                    return Err(RetrieverError::InvalidParameter {
                        name: "split",
                        reason: format!(
                            "`{s}` is not a split name (all, train, test, or a BEIR qrels file's \
                             name: letters, digits, `_`, `-`, `.`)"
                        ),
                    });
                }
                Self::Named(s.to_owned())
            }
        })
    }
}

impl PartialEq<&str> for Split {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl Serialize for Split {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Split {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_paths_are_refused() {
        for s in ["all", "train", "test", "dev", "test-2", "v1.1"] {
            let split: Split = s.parse().expect(s);
            assert_eq!(split.to_string(), s);
            assert_eq!(split, s);
            let json = serde_json::to_string(&split).expect("serialises");
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<Split>(&json).expect("parses"), split);
        }
        assert_eq!(
            "dev".parse::<Split>().ok(),
            Some(Split::Named("dev".into()))
        );
        for bad in ["", "../test", "a/b", ".hidden", "..", "tr ain", "x\\y"] {
            let err = bad.parse::<Split>().expect_err(bad);
            assert!(err.to_string().contains("not a split name"), "{bad}: {err}");
        }
        assert!(serde_json::from_str::<Split>("\"../etc\"").is_err());
    }
}
