//! WXBizMsgCrypt, WeCom's callback crypto: pure code, tested natively.
//!
//! - `msg_signature = hex(sha1(concat(sort([token, timestamp, nonce, encrypt]))))`;
//! - key = Base64(EncodingAESKey + "="), 32 bytes; IV = the key's first 16 bytes;
//! - plaintext = 16 random bytes ‖ u32 big-endian length of msg ‖ msg ‖ receive id,
//!   PKCS#7-padded to a multiple of **32** bytes (so the cipher runs without padding and
//!   the padding is checked here), AES-256-CBC, Base64.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::Engine as _;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use sha1::{Digest, Sha1};

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// WeCom pads to this block, not AES's 16.
const PAD_BLOCK: usize = 32;

/// The EncodingAESKey is 43 Base64 characters whose last one carries bits beyond the key:
/// decoding must allow them.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Why a callback was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CryptoError {
    /// The EncodingAESKey is not 43 Base64 characters.
    BadKey,
    /// `msg_signature` does not match.
    BadSignature,
    /// The timestamp is outside the replay window (or not a number).
    Stale,
    /// The ciphertext is not Base64, or not whole AES blocks.
    BadCiphertext,
    /// The padding is not WeCom's PKCS#7 (1–32 bytes of its own length).
    BadPadding,
    /// The message is shorter than its header or its declared length.
    Truncated,
    /// The message is for another corp or app.
    WrongReceiver(String),
    /// The message is not UTF-8.
    NotText,
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CryptoError::BadKey => {
                write!(
                    f,
                    "the EncodingAESKey must be the 43 characters WeCom shows"
                )
            }
            CryptoError::BadSignature => write!(f, "msg_signature does not match"),
            CryptoError::Stale => write!(f, "the timestamp is outside the replay window"),
            CryptoError::BadCiphertext => {
                write!(f, "the ciphertext is not Base64 of whole AES blocks")
            }
            CryptoError::BadPadding => write!(f, "the decrypted padding is wrong"),
            CryptoError::Truncated => write!(f, "the decrypted message is truncated"),
            CryptoError::WrongReceiver(got) => {
                write!(f, "the message is for receive id {got:?}, not this corp")
            }
            CryptoError::NotText => write!(f, "the decrypted message is not UTF-8"),
        }
    }
}

/// One corp's (or app's) callback settings.
#[derive(Clone)]
pub struct MsgCrypt {
    token: String,
    key: [u8; 32],
    receive_id: String,
}

impl std::fmt::Debug for MsgCrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgCrypt")
            .field("receive_id", &self.receive_id)
            .finish_non_exhaustive()
    }
}

impl MsgCrypt {
    pub fn new(
        token: &str,
        encoding_aes_key: &str,
        receive_id: &str,
    ) -> Result<MsgCrypt, CryptoError> {
        let encoding_aes_key = encoding_aes_key.trim();
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::BadKey);
        }
        let bytes = KEY_BASE64
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(MsgCrypt {
            token: token.trim().to_owned(),
            key,
            receive_id: receive_id.trim().to_owned(),
        })
    }

    /// `msg_signature` of a callback.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypt];
        parts.sort_unstable();
        let digest = Sha1::digest(parts.concat().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Checks `msg_signature` (case-insensitive hex).
    pub fn check_signature(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CryptoError> {
        let want = self.signature(timestamp, nonce, encrypt);
        if trellis_connector_sdk::same_secret(
            want.as_bytes(),
            msg_signature.trim().to_ascii_lowercase().as_bytes(),
        ) {
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }

    /// Decrypts `encrypt` (Base64) and checks its padding, length and receive id.
    pub fn decrypt(&self, encrypt: &str) -> Result<String, CryptoError> {
        let mut data = base64::engine::general_purpose::STANDARD
            .decode(encrypt.trim())
            .map_err(|_| CryptoError::BadCiphertext)?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err(CryptoError::BadCiphertext);
        }
        let iv: [u8; 16] = self.key[..16].try_into().map_err(|_| CryptoError::BadKey)?;
        let plain = Decryptor::new(&self.key.into(), &iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut data)
            .map_err(|_| CryptoError::BadCiphertext)?;
        let pad = usize::from(*plain.last().ok_or(CryptoError::BadPadding)?);
        if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
            return Err(CryptoError::BadPadding);
        }
        let (content, padding) = plain.split_at(plain.len() - pad);
        if padding.iter().any(|b| usize::from(*b) != pad) {
            return Err(CryptoError::BadPadding);
        }
        if content.len() < 20 {
            return Err(CryptoError::Truncated);
        }
        let len = u32::from_be_bytes([content[16], content[17], content[18], content[19]]);
        let end = 20usize
            .checked_add(usize::try_from(len).map_err(|_| CryptoError::Truncated)?)
            .filter(|end| *end <= content.len())
            .ok_or(CryptoError::Truncated)?;
        let (msg, receiver) = (&content[20..end], &content[end..]);
        if !trellis_connector_sdk::same_secret(receiver, self.receive_id.as_bytes()) {
            return Err(CryptoError::WrongReceiver(
                String::from_utf8_lossy(receiver).chars().take(64).collect(),
            ));
        }
        String::from_utf8(msg.to_vec()).map_err(|_| CryptoError::NotText)
    }

    /// Encrypts `msg` with the 16 random bytes `random` (a passive reply; the mock server
    /// and the tests).
    pub fn encrypt(&self, msg: &str, random: &[u8; 16]) -> String {
        let mut plain = Vec::with_capacity(20 + msg.len() + self.receive_id.len() + PAD_BLOCK);
        plain.extend_from_slice(random);
        plain.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
        plain.extend_from_slice(msg.as_bytes());
        plain.extend_from_slice(self.receive_id.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(u8::try_from(pad).unwrap_or(32), pad));
        let len = plain.len();
        let iv: [u8; 16] = self.key[..16].try_into().unwrap_or([0; 16]);
        let cipher = Encryptor::new(&self.key.into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, len)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(cipher)
    }
}

/// Whether a callback's `timestamp` (seconds) is within `window_secs` of `now_secs`: an
/// old callback replayed later is refused.
pub fn check_fresh(timestamp: &str, now_secs: i64, window_secs: i64) -> Result<(), CryptoError> {
    let t: i64 = timestamp.trim().parse().map_err(|_| CryptoError::Stale)?;
    if (now_secs - t).abs() > window_secs {
        return Err(CryptoError::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    // Tencent's published WXBizMsgCrypt sample (Sample.cpp / .cs / .php): token "QDG6eK",
    // this EncodingAESKey, corp "wx5823bf96d3bd56c7", and its two callbacks.
    const TOKEN: &str = "QDG6eK";
    const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const CORP: &str = "wx5823bf96d3bd56c7";
    const ECHO: &str =
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
    const POST: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";

    fn crypt() -> MsgCrypt {
        MsgCrypt::new(TOKEN, AES_KEY, CORP).unwrap()
    }

    #[test]
    fn the_official_url_verification_passes() {
        let c = crypt();
        c.check_signature(
            "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
            "1409659589",
            "263014780",
            ECHO,
        )
        .unwrap();
        assert_eq!(c.decrypt(ECHO).unwrap(), "1616140317555161061");
        // Re-encrypted with the sample's random prefix: the same bytes.
        assert_eq!(c.encrypt("1616140317555161061", b"c41b64491c2468d0"), ECHO);
    }

    #[test]
    fn the_official_message_decrypts_with_its_32_byte_padding() {
        let c = crypt();
        c.check_signature(
            "477715d11cdb4164915debcba66cb864d751f3e6",
            "1409659813",
            "1372623149",
            POST,
        )
        .unwrap();
        let xml = c.decrypt(POST).unwrap();
        assert!(
            xml.starts_with("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]>"),
            "{xml}"
        );
        assert!(
            xml.contains("<Content><![CDATA[hello]]></Content>"),
            "{xml}"
        );
        assert_eq!(c.encrypt(&xml, b"0960688932c47ef1"), POST);
    }

    #[test]
    fn tampering_is_refused_in_words() {
        let c = crypt();
        assert_eq!(
            c.check_signature(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd4",
                "1409659589",
                "263014780",
                ECHO
            ),
            Err(CryptoError::BadSignature)
        );
        // Signed for another timestamp: the signature covers it.
        assert_eq!(
            c.check_signature(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
                "1409659590",
                "263014780",
                ECHO
            ),
            Err(CryptoError::BadSignature)
        );
        // Another corp's key and id.
        let other = MsgCrypt::new(TOKEN, AES_KEY, "ww0000000000000000").unwrap();
        assert!(matches!(other.decrypt(ECHO), Err(CryptoError::WrongReceiver(r)) if r == CORP));
        // Truncated: one block short, not Base64, empty.
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(POST)
            .unwrap();
        let short = base64::engine::general_purpose::STANDARD.encode(&bytes[..bytes.len() - 16]);
        assert!(matches!(
            c.decrypt(&short),
            Err(CryptoError::BadPadding | CryptoError::Truncated | CryptoError::WrongReceiver(_))
        ));
        let odd = base64::engine::general_purpose::STANDARD.encode(&bytes[..bytes.len() - 5]);
        assert_eq!(c.decrypt(&odd), Err(CryptoError::BadCiphertext));
        assert_eq!(c.decrypt("***"), Err(CryptoError::BadCiphertext));
        assert_eq!(c.decrypt(""), Err(CryptoError::BadCiphertext));
        assert_eq!(
            MsgCrypt::new(TOKEN, "short", CORP).unwrap_err(),
            CryptoError::BadKey
        );
    }

    #[test]
    fn a_round_trip_of_a_long_chinese_message() {
        let c = MsgCrypt::new(
            "tok",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            "ww1234",
        )
        .unwrap();
        for len in [0usize, 1, 11, 12, 31, 32, 33, 500] {
            let msg: String = "客户添加了企业微信".chars().cycle().take(len).collect();
            let e = c.encrypt(&msg, &[7; 16]);
            assert_eq!(c.decrypt(&e).unwrap(), msg, "{len}");
        }
    }

    #[test]
    fn replayed_timestamps_are_refused() {
        assert!(check_fresh("1409659589", 1_409_659_600, 300).is_ok());
        assert_eq!(
            check_fresh("1409659589", 1_409_669_600, 300),
            Err(CryptoError::Stale)
        );
        assert_eq!(
            check_fresh("soon", 1_409_659_600, 300),
            Err(CryptoError::Stale)
        );
    }
}
