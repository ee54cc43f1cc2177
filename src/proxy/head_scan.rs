//! A look at the raw bytes of a request head for what hyper hides: a head with both
//! `Content-Length` and `Transfer-Encoding`. hyper frames such a request by its chunks and
//! drops the length before the handler sees it (RFC 9112 6.1 allows that), but a gateway
//! ought to refuse it (RFC 9112 6.3: a likely request-smuggling attempt), and a refusal needs
//! to know it was there.
//!
//! Written here because no crate parses a head incrementally without buffering it; this
//! only follows header names, byte by byte, across however many reads the head takes, and
//! allocates nothing.

const CONTENT_LENGTH: &[u8] = b"content-length";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";

/// What the scan of one head has seen so far.
#[derive(Debug, Default, Clone)]
pub struct HeadScan {
    /// Lines ended so far (the request line is line 0).
    lines: usize,
    /// Bytes on the current line, `\r` not counted.
    line_len: usize,
    /// Still reading the current line's field name.
    in_name: bool,
    /// The name so far still matches `Content-Length` / `Transfer-Encoding`.
    may_be_length: bool,
    may_be_encoding: bool,
    saw_length: bool,
    saw_encoding: bool,
    done: bool,
}

impl HeadScan {
    /// Reads `bytes`, the next bytes of the head. Returns how many belonged to the head
    /// (all of them unless it ended inside `bytes`).
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        for (at, &byte) in bytes.iter().enumerate() {
            if self.done {
                return at;
            }
            match byte {
                b'\r' => {}
                b'\n' => self.end_line(),
                b':' if self.in_name => {
                    let len = self.line_len;
                    self.saw_length |= self.may_be_length && len == CONTENT_LENGTH.len();
                    self.saw_encoding |= self.may_be_encoding && len == TRANSFER_ENCODING.len();
                    self.in_name = false;
                    self.line_len += 1;
                }
                _ => {
                    if self.in_name {
                        let lower = byte.to_ascii_lowercase();
                        let at = self.line_len;
                        self.may_be_length &= CONTENT_LENGTH.get(at) == Some(&lower);
                        self.may_be_encoding &= TRANSFER_ENCODING.get(at) == Some(&lower);
                    }
                    self.line_len += 1;
                }
            }
        }
        bytes.len()
    }

    fn end_line(&mut self) {
        if self.line_len == 0 && self.lines > 0 {
            // The empty line: the head is over.
            self.done = true;
            return;
        }
        if self.line_len > 0 {
            // Empty lines before the request line are ignored (RFC 9112 2.2).
            self.lines += 1;
        }
        self.line_len = 0;
        self.in_name = self.lines > 0;
        self.may_be_length = true;
        self.may_be_encoding = true;
    }

    /// Whether the head has ended.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Whether the head carried both `Content-Length` and `Transfer-Encoding`.
    pub fn ambiguous_length(&self) -> bool {
        self.saw_length && self.saw_encoding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(parts: &[&[u8]]) -> HeadScan {
        let mut scan = HeadScan::default();
        for part in parts {
            scan.feed(part);
        }
        scan
    }

    #[test]
    fn both_fields_in_any_case_and_order_are_seen() {
        for head in [
            &b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST /x HTTP/1.1\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 3\r\n\r\n",
            b"\r\nPOST /x HTTP/1.1\nHost: a\nContent-Length: 3\nTransfer-Encoding: chunked\n\n",
        ] {
            let whole = scan(&[head]);
            assert!(whole.done() && whole.ambiguous_length(), "{head:?}");
            // Split anywhere, one byte at a time: the same.
            let bytes: Vec<&[u8]> = head.chunks(1).collect();
            let split = scan(&bytes);
            assert!(split.done() && split.ambiguous_length(), "{head:?}");
        }
    }

    #[test]
    fn lookalikes_and_values_do_not_count() {
        for head in [
            &b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\n"[..],
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /x HTTP/1.1\r\nX-Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /x HTTP/1.1\r\nContent-Lengths: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /x HTTP/1.1\r\nX-Note: Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /content-length: HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(!scan(&[head]).ambiguous_length(), "{head:?}");
        }
    }

    #[test]
    fn the_scan_stops_at_the_end_of_the_head() {
        let mut scan = HeadScan::default();
        let head = b"POST /x HTTP/1.1\r\nContent-Length: 30\r\n\r\n";
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        assert_eq!(scan.feed(&bytes), head.len());
        assert!(scan.done());
        assert!(!scan.ambiguous_length(), "a body is not a head");
    }
}
