//! Removal of configured secret values from provider text and errors before they are logged
//! or returned.
//!
//! Providers echo keys back: a rate-limit message may quote the key, and an HTTP client's
//! error prints the request URL with its `apikey=` query. [`Scrubber::scrub`] replaces every
//! secret with `***`, both as configured and in the percent-encoded forms a URL query can carry.
//! [`Scrubber::scrub_error`] also drops URLs from error chains.

use std::borrow::Cow;
use std::fmt;

/// Replacement for a secret.
const MASK: &str = "***";

/// Replacement for a URL in an error message.
const URL_MASK: &str = "<url>";

/// Shorter values are ignored, because masking them would garble ordinary text.
const MIN_SECRET_CHARS: usize = 4;

/// Error chains are followed at most this deep.
const MAX_ERROR_DEPTH: usize = 32;

/// Secret values to remove from text, with their encoded forms.
///
/// `Debug` prints only the number of patterns, never the values.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Every form of every secret, longest first, without duplicates.
    patterns: Vec<String>,
}

impl Scrubber {
    /// Creates a scrubber for `secrets`. Values shorter than 4 characters, empty ones
    /// included, are ignored. A value with surrounding whitespace is also matched trimmed.
    ///
    /// Each value is matched as given and in each of these encodings, with upper- and
    /// lower-case hex digits: RFC 3986 (everything but `A-Z a-z 0-9 - . _ ~` as `%XX`),
    /// `application/x-www-form-urlencoded` (space as `+`, everything but
    /// `A-Z a-z 0-9 * - . _` as `%XX`), and the URL query set (only controls, space, `"`,
    /// `#`, `'`, `<`, `>` and non-ASCII bytes as `%XX`).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut patterns = Vec::new();
        for secret in secrets {
            let trimmed = secret.trim();
            for value in [secret.as_str(), trimmed] {
                if value.chars().count() < MIN_SECRET_CHARS {
                    continue;
                }
                patterns.push(value.to_owned());
                for encoding in ENCODINGS {
                    for hex in [UPPER_HEX, LOWER_HEX] {
                        patterns.push(percent_encode(value, encoding, hex));
                    }
                }
            }
        }
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        Scrubber { patterns }
    }

    /// Returns whether no secret is configured, so that [`scrub`](Self::scrub) changes nothing.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Returns `text` with every occurrence of every secret form replaced by `***`.
    ///
    /// Overlapping and adjacent occurrences are replaced together by a single `***`, so no
    /// part of either remains. Replacement repeats until no secret form is left, in case the
    /// joined remainders form one.
    pub fn scrub(&self, text: &str) -> String {
        let mut current = Cow::Borrowed(text);
        loop {
            let ranges = self.secret_ranges(&current);
            if ranges.is_empty() {
                return current.into_owned();
            }
            current = Cow::Owned(replace_ranges(&current, &ranges, MASK));
        }
    }

    /// Returns the messages of `err` and its sources joined with `": "`, with each URL
    /// replaced by `<url>` and then every secret scrubbed.
    ///
    /// A URL is any token starting with `http://` or `https://` in any case. It ends before
    /// whitespace, a quote, a backtick, `<`, `>` or a closing bracket, and trailing `.,;:!?`
    /// are left in place.
    pub fn scrub_error(&self, err: &dyn std::error::Error) -> String {
        let mut messages = Vec::new();
        let mut current = Some(err);
        while let Some(error) = current {
            if messages.len() == MAX_ERROR_DEPTH {
                break;
            }
            messages.push(remove_urls(&error.to_string()));
            current = error.source();
        }
        self.scrub(&messages.join(": "))
    }

    /// Byte ranges of all occurrences of all patterns in `text`, sorted and merged where
    /// they overlap or touch.
    fn secret_ranges(&self, text: &str) -> Vec<(usize, usize)> {
        let mut ranges = Vec::new();
        for pattern in &self.patterns {
            let mut from = 0;
            while let Some(offset) = text[from..].find(pattern.as_str()) {
                let start = from + offset;
                ranges.push((start, start + pattern.len()));
                // Step one character, so overlapping occurrences are found too.
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        merge_ranges(ranges)
    }
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrubber")
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

/// Bytes a percent-encoding keeps as they are, and its replacement for a space.
#[derive(Clone, Copy)]
struct Encoding {
    keeps: fn(u8) -> bool,
    space: &'static str,
}

const ENCODINGS: [Encoding; 3] = [
    // RFC 3986 unreserved characters.
    Encoding {
        keeps: |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'),
        space: "%20",
    },
    // WHATWG application/x-www-form-urlencoded.
    Encoding {
        keeps: |b| b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_'),
        space: "+",
    },
    // WHATWG query percent-encode set.
    Encoding {
        keeps: |b| b > b' ' && b < 0x7f && !matches!(b, b'"' | b'#' | b'\'' | b'<' | b'>'),
        space: "%20",
    },
];

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";

fn percent_encode(value: &str, encoding: Encoding, hex: &[u8; 16]) -> String {
    let mut encoded = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte == b' ' {
            encoded.push_str(encoding.space);
        } else if (encoding.keeps)(byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            encoded.push(char::from(hex[usize::from(byte >> 4)]));
            encoded.push(char::from(hex[usize::from(byte & 0x0f)]));
        }
    }
    encoded
}

fn merge_ranges(mut ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Replaces each of the sorted, disjoint byte `ranges` of `text` with `mask`.
fn replace_ranges(text: &str, ranges: &[(usize, usize)], mask: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut kept_from = 0;
    for &(start, end) in ranges {
        output.push_str(&text[kept_from..start]);
        output.push_str(mask);
        kept_from = end;
    }
    output.push_str(&text[kept_from..]);
    output
}

fn remove_urls(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut ranges = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let rest = &bytes[position..];
        let scheme_len = ["http://", "https://"]
            .iter()
            .find(|scheme| {
                rest.len() >= scheme.len()
                    && rest[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
            })
            .map(|scheme| scheme.len());
        let Some(scheme_len) = scheme_len else {
            position += 1;
            continue;
        };
        let url_start = position;
        let mut url_end = position + scheme_len;
        for (offset, c) in text[url_end..].char_indices() {
            if c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')' | ']' | '}') {
                break;
            }
            url_end = position + scheme_len + offset + c.len_utf8();
        }
        while url_end > url_start + scheme_len
            && matches!(bytes[url_end - 1], b'.' | b',' | b';' | b':' | b'!' | b'?')
        {
            url_end -= 1;
        }
        ranges.push((url_start, url_end));
        position = url_end.max(position + 1);
    }
    replace_ranges(text, &ranges, URL_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scrubber_for(secrets: &[&str]) -> Scrubber {
        Scrubber::new(secrets.iter().map(|s| s.to_string()))
    }

    #[derive(Debug)]
    struct ChainError {
        message: String,
        source: Option<Box<ChainError>>,
    }

    impl fmt::Display for ChainError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.message)
        }
    }

    impl std::error::Error for ChainError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.source
                .as_deref()
                .map(|source| source as &(dyn std::error::Error + 'static))
        }
    }

    fn chain(messages: &[&str]) -> ChainError {
        let mut error: Option<ChainError> = None;
        for message in messages.iter().rev() {
            error = Some(ChainError {
                message: message.to_string(),
                source: error.map(Box::new),
            });
        }
        error.expect("at least one message")
    }

    #[test]
    fn key_in_plain_text() {
        let scrubber = scrubber_for(&["S3CRETKEY"]);
        assert_eq!(
            scrubber.scrub("token S3CRETKEY rejected"),
            "token *** rejected"
        );
        assert_eq!(scrubber.scrub("S3CRETKEYS3CRETKEY"), "***");
    }

    #[test]
    fn key_in_url_query() {
        let scrubber = scrubber_for(&["demoKEY123"]);
        assert_eq!(
            scrubber.scrub("/query?function=GLOBAL_QUOTE&symbol=IBM&apikey=demoKEY123"),
            "/query?function=GLOBAL_QUOTE&symbol=IBM&apikey=***"
        );
    }

    #[test]
    fn percent_encoded_key() {
        let scrubber = scrubber_for(&["ab+cd/ef=="]);
        let cases = [
            ("apikey=ab+cd/ef==", "apikey=***"),
            ("apikey=ab%2Bcd%2Fef%3D%3D", "apikey=***"),
            ("apikey=ab%2bcd%2fef%3d%3d", "apikey=***"),
        ];
        for (text, expected) in cases {
            assert_eq!(scrubber.scrub(text), expected, "{text}");
        }
    }

    #[test]
    fn form_encoded_space() {
        let scrubber = scrubber_for(&["pass phrase"]);
        assert_eq!(scrubber.scrub("k=pass+phrase&x=1"), "k=***&x=1");
        assert_eq!(scrubber.scrub("k=pass%20phrase&x=1"), "k=***&x=1");
    }

    #[test]
    fn overlapping_secrets() {
        let scrubber = scrubber_for(&["ABCD", "ABCDEFGH", "EFGHIJ"]);
        assert_eq!(scrubber.scrub("x ABCDEFGH y"), "x *** y");
        assert_eq!(scrubber.scrub("x ABCDEFGHIJ y"), "x *** y");
        assert_eq!(scrubber.scrub("x ABCD y EFGHIJ z"), "x *** y *** z");
        let repeated = Scrubber::new(["aaaa".to_string()]);
        assert_eq!(repeated.scrub("baaaaab"), "b***b");
    }

    #[test]
    fn provider_echo_of_key() {
        let scrubber = scrubber_for(&["Q7XK2M9PLR"]);
        let body = "We have detected your API key as Q7XK2M9PLR and our standard API rate \
                    limit is 25 requests per day.";
        let scrubbed = scrubber.scrub(body);
        assert_eq!(
            scrubbed,
            "We have detected your API key as *** and our standard API rate limit is 25 \
             requests per day."
        );
    }

    #[test]
    fn no_secrets_configured() {
        let scrubber = Scrubber::default();
        assert!(scrubber.is_empty());
        assert_eq!(scrubber.scrub("apikey=abc"), "apikey=abc");
        let from_empty = Scrubber::new(Vec::new());
        assert!(from_empty.is_empty());
    }

    #[test]
    fn short_and_empty_values_ignored() {
        let scrubber = scrubber_for(&["", "abc", "ab\n"]);
        assert!(scrubber.is_empty());
        assert_eq!(scrubber.scrub("abc"), "abc");
        let four = scrubber_for(&["abcd"]);
        assert!(!four.is_empty());
        assert_eq!(four.scrub("abcd"), "***");
    }

    #[test]
    fn trimmed_value_matched() {
        let scrubber = scrubber_for(&["KEY12345\n"]);
        assert_eq!(scrubber.scrub("key=KEY12345 ok"), "key=*** ok");
    }

    #[test]
    fn multibyte_text_kept_intact() {
        let scrubber = scrubber_for(&["clé-secrète"]);
        assert_eq!(scrubber.scrub("→ clé-secrète ←"), "→ *** ←");
        assert_eq!(scrubber.scrub("k=cl%C3%A9-secr%C3%A8te"), "k=***");
    }

    #[test]
    fn debug_hides_values() {
        let scrubber = scrubber_for(&["HIDDENVALUE"]);
        let debug = format!("{scrubber:?}");
        assert!(!debug.contains("HIDDENVALUE"), "{debug}");
        assert_eq!(debug, "Scrubber { patterns: 1 }");
    }

    #[test]
    fn error_chain_without_urls() {
        let scrubber = scrubber_for(&["demoKEY123"]);
        let error = chain(&[
            "quote request failed",
            "error sending request for url (https://www.alphavantage.co/query?symbol=IBM&apikey=demoKEY123)",
            "connection refused",
        ]);
        assert_eq!(
            scrubber.scrub_error(&error),
            "quote request failed: error sending request for url (<url>): connection refused"
        );
    }

    #[test]
    fn error_urls_removed_without_secrets() {
        let scrubber = Scrubber::default();
        let cases = [
            ("GET HTTP://Example.test/a?b=c failed", "GET <url> failed"),
            ("see https://x.test/p.", "see <url>."),
            ("\"https://x.test/q\"", "\"<url>\""),
            (
                "urls http://a.test, https://b.test/c; done",
                "urls <url>, <url>; done",
            ),
            (
                "no url here: http:/ nor https",
                "no url here: http:/ nor https",
            ),
            ("bare https://", "bare <url>"),
        ];
        for (message, expected) in cases {
            assert_eq!(
                scrubber.scrub_error(&chain(&[message])),
                expected,
                "{message}"
            );
        }
    }

    #[test]
    fn error_secret_outside_url_scrubbed() {
        let scrubber = scrubber_for(&["tok_ABCDEF"]);
        let error = chain(&["invalid token tok_ABCDEF", "status 401"]);
        assert_eq!(
            scrubber.scrub_error(&error),
            "invalid token ***: status 401"
        );
    }

    /// Percent-encodes like `encodeURIComponent`, written independently of the scrubber's
    /// encoder.
    fn uri_component(value: &str, lower_hex: bool) -> String {
        value
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else if lower_hex {
                    format!("%{b:02x}")
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn scrubbed_output_has_no_secret(
            secrets in proptest::collection::vec("[A-Za-z0-9+/=_.~ -]{4,16}", 1..4),
            pieces in proptest::collection::vec(
                ("[a-z0-9 ?&=:/%+.-]{0,12}", 0usize..4, 0usize..3),
                0..12,
            ),
        ) {
            let scrubber = Scrubber::new(secrets.clone());
            let mut text = String::new();
            for (filler, secret_index, form) in pieces {
                text.push_str(&filler);
                if let Some(secret) = secrets.get(secret_index) {
                    match form {
                        0 => text.push_str(secret),
                        1 => text.push_str(&uri_component(secret, false)),
                        _ => text.push_str(&uri_component(secret, true)),
                    }
                }
            }
            let scrubbed = scrubber.scrub(&text);
            for secret in &secrets {
                prop_assert!(!scrubbed.contains(secret.as_str()), "{secret:?} in {scrubbed:?}");
                for lower_hex in [false, true] {
                    let encoded = uri_component(secret, lower_hex);
                    prop_assert!(!scrubbed.contains(&encoded), "{encoded:?} in {scrubbed:?}");
                }
            }
        }
    }
}
