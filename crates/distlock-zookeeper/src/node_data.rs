//! What a queue node's data says: the holder label of a labelled exclusive
//! hold (an elected leader's identity), and, for a node kept after its
//! release (lock-at-least-for, see the `hold` module), the fencing token of
//! the hold it continues.
//!
//! A node's data is the label's UTF-8 (empty without one). A kept node's
//! data starts with a NUL byte, which no label holds: `NUL <token in
//! decimal> NUL <label>`. Kept nodes are created anew, so their creation
//! zxid is not their hold's token; the data carries it.

/// The data of one queue node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NodeData {
    /// The holder label, if the hold has one.
    pub(crate) label: Option<String>,
    /// For a node kept after its release: the fencing token (creation
    /// zxid) of the hold it continues.
    pub(crate) kept_token: Option<u64>,
}

/// Marks a kept node's data.
const KEPT: u8 = 0;

impl NodeData {
    /// The data of a new queue node with `label`.
    pub(crate) fn labelled(label: Option<&str>) -> Vec<u8> {
        label.map(|l| l.as_bytes().to_vec()).unwrap_or_default()
    }

    /// The data of a node that continues the hold of token `token`, with
    /// `label`.
    pub(crate) fn kept(token: u64, label: Option<&str>) -> Vec<u8> {
        let mut data = vec![KEPT];
        data.extend_from_slice(token.to_string().as_bytes());
        data.push(KEPT);
        data.extend_from_slice(label.unwrap_or_default().as_bytes());
        data
    }

    /// Reads a node's data back; what cannot be read counts as absent.
    pub(crate) fn parse(data: &[u8]) -> NodeData {
        let (kept_token, label) = match data.strip_prefix(&[KEPT]) {
            Some(rest) => {
                let (token, label) = match rest.iter().position(|&b| b == KEPT) {
                    Some(at) => (&rest[..at], &rest[at + 1..]),
                    None => (rest, &[][..]),
                };
                let token = std::str::from_utf8(token).ok().and_then(|t| t.parse().ok());
                (token, label)
            }
            None => (None, data),
        };
        let label = std::str::from_utf8(label)
            .ok()
            .filter(|l| !l.is_empty())
            .map(str::to_string);
        NodeData { label, kept_token }
    }

    /// The fencing token of the hold this node stands for, given its
    /// creation zxid.
    pub(crate) fn token(&self, czxid: i64) -> u64 {
        self.kept_token.unwrap_or(czxid as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_kept_tokens_read_back() {
        for label in [None, Some("node-7"), Some("é/ü 0\u{1}")] {
            let fresh = NodeData::parse(&NodeData::labelled(label));
            assert_eq!(fresh.label.as_deref(), label);
            assert_eq!((fresh.kept_token, fresh.token(42)), (None, 42));
            let kept = NodeData::parse(&NodeData::kept(7, label));
            assert_eq!(kept.label.as_deref(), label);
            assert_eq!((kept.kept_token, kept.token(42)), (Some(7), 7));
        }
    }

    #[test]
    fn odd_data_is_no_label_and_no_token() {
        assert_eq!(NodeData::parse(b""), NodeData::default());
        assert_eq!(NodeData::parse(&[0xff, 0xfe]), NodeData::default());
        assert_eq!(NodeData::parse(b"\0x\0"), NodeData::default());
        assert_eq!(NodeData::parse(b"\0"), NodeData::default());
    }
}
