//! The format-reward hook: how well a generated output follows the expected
//! structure (for example Search-R1's `<think>…</think><answer>…</answer>`).

/// A format reward: scores a generated output in `[0, 1]`.
///
/// Implement it for any structure a policy must follow; [`TagFormat`] covers
/// the common XML-tag protocols.
pub trait FormatReward {
    /// Score `output` in `[0, 1]` (1 = well formed).
    fn score(&self, output: &str) -> f64;
}

/// Requires each listed tag to appear exactly once as `<tag>…</tag>`, in the
/// listed order, with non-blank content. The score is the share of tags that
/// are well formed, and 0 when any is out of order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TagFormat {
    /// Tag names without angle brackets, in the order they must appear.
    pub tags: Vec<String>,
}

impl TagFormat {
    /// A checker for the given tags, in order.
    pub fn new<S: Into<String>>(tags: impl IntoIterator<Item = S>) -> Self {
        Self {
            tags: tags.into_iter().map(Into::into).collect(),
        }
    }
}

/// The content of the single `<tag>…</tag>` in `output`, trimmed; `None` when
/// the tag is missing, unclosed or occurs more than once.
pub fn extract_tag<'a>(output: &'a str, tag: &str) -> Option<&'a str> {
    tag_span(output, tag).map(|(_, inner)| inner.trim())
}

/// Start offset and inner text of the single `<tag>…</tag>` in `output`.
fn tag_span<'a>(output: &'a str, tag: &str) -> Option<(usize, &'a str)> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    if output.matches(&open).count() != 1 || output.matches(&close).count() != 1 {
        return None;
    }
    let start = output.find(&open)?;
    let inner_start = start + open.len();
    let end = output.find(&close)?;
    (end >= inner_start).then(|| (start, &output[inner_start..end]))
}

impl FormatReward for TagFormat {
    fn score(&self, output: &str) -> f64 {
        if self.tags.is_empty() {
            return 1.0;
        }
        let mut good = 0usize;
        let mut last_start = None;
        for tag in &self.tags {
            if let Some((start, inner)) = tag_span(output, tag) {
                if last_start.is_some_and(|prev| start < prev) {
                    return 0.0;
                }
                last_start = Some(start);
                if !inner.trim().is_empty() {
                    good += 1;
                }
            }
        }
        good as f64 / self.tags.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_format_scores_structure() {
        let f = TagFormat::new(["think", "answer"]);
        assert_eq!(f.score("<think>hmm</think><answer>Paris</answer>"), 1.0);
        assert_eq!(f.score("<answer>Paris</answer>"), 0.5);
        assert_eq!(f.score("<answer>Paris</answer><think>x</think>"), 0.0);
        assert_eq!(f.score("<think> </think><answer>Paris</answer>"), 0.5);
        assert_eq!(
            f.score("<think>a</think><answer>1</answer><answer>2</answer>"),
            0.5
        );
        assert_eq!(f.score("no tags"), 0.0);
        assert_eq!(f.score("</answer>x<answer>"), 0.0);
        assert_eq!(TagFormat::new(Vec::<String>::new()).score("anything"), 1.0);
    }

    #[test]
    fn extract_tag_returns_trimmed_content() {
        assert_eq!(
            extract_tag("x <answer> Paris </answer>", "answer"),
            Some("Paris")
        );
        assert_eq!(
            extract_tag("<answer>a</answer><answer>b</answer>", "answer"),
            None
        );
        assert_eq!(extract_tag("<answer>open", "answer"), None);
    }
}
