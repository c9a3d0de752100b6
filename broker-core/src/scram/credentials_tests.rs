//! The tests of `credentials.rs`: entries, files, derivation and their errors.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

fn line(user: &str, c: &ScramCredentials) -> String {
    format!("{user}:{}\n", c.to_entry())
}

#[test]
fn derivation_matches_rfc_7677() {
    // RFC 7677 section 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==,
    // 4096 iterations. The RFC gives no keys, but its proof and server signature only
    // come out of the right ones (checked in server.rs); here: what they are.
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let c = ScramCredentials::derive_with_salt(Mechanism::Sha256, b"pencil", &salt, 4096).unwrap();
    assert_eq!(c.stored_key.len(), 32);
    assert_eq!(c.server_key.len(), 32);
    assert_ne!(c.stored_key, c.server_key);
    let again =
        ScramCredentials::derive_with_salt(Mechanism::Sha256, b"pencil", &salt, 4096).unwrap();
    assert_eq!(c, again);
    let other =
        ScramCredentials::derive_with_salt(Mechanism::Sha256, b"pencil!", &salt, 4096).unwrap();
    assert_ne!(c.stored_key, other.stored_key);
}

#[test]
fn too_few_iterations_are_refused_on_creation_and_on_load() {
    assert_eq!(
        ScramCredentials::derive(Mechanism::Sha256, "pw", 4095),
        Err(CredentialError::TooFewIterations(4095))
    );
    let c = ScramCredentials::derive(Mechanism::Sha256, "pw", 4096).unwrap();
    let text = line("alice", &c).replace("$4096$", "$4095$");
    let e = CredentialStore::parse(&text).unwrap_err();
    assert_eq!(e.line, 1);
    assert_eq!(e.error, EntryError::TooFewIterations(4095));
}

#[test]
fn a_file_round_trips() {
    let mut store = CredentialStore::new();
    let a = ScramCredentials::derive(Mechanism::Sha256, "pa", 4096).unwrap();
    let b = ScramCredentials::derive(Mechanism::Sha512, "pb", 5000).unwrap();
    store.insert("alice", a.clone()).unwrap();
    store.insert("alice", b.clone()).unwrap();
    store.insert("bob:with=colon,comma", a.clone()).unwrap();
    let text = store.to_file();
    assert_eq!(text.lines().count(), 3);
    let read = CredentialStore::parse(&text).unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(read.get(Mechanism::Sha256, "alice"), Some(&a));
    assert_eq!(read.get(Mechanism::Sha512, "alice"), Some(&b));
    assert_eq!(
        read.get(Mechanism::Sha256, "bob:with=colon,comma"),
        Some(&a)
    );
    assert_eq!(read.get(Mechanism::Sha512, "bob:with=colon,comma"), None);
    // Salts are fresh each time.
    let again = ScramCredentials::derive(Mechanism::Sha256, "pa", 4096).unwrap();
    assert_ne!(again.salt, a.salt);
    assert_eq!(again.salt.len(), SALT_LEN);
}

#[test]
fn comments_blank_lines_and_crlf_are_accepted() {
    let c = ScramCredentials::derive(Mechanism::Sha256, "pw", 4096).unwrap();
    let text = format!("# users\n\n   \r\n{}\r\n", line("alice", &c).trim_end());
    let store = CredentialStore::parse(&text).unwrap();
    assert_eq!(store.get(Mechanism::Sha256, "alice"), Some(&c));
}

#[test]
fn a_bad_line_is_named() {
    let good = ScramCredentials::derive(Mechanism::Sha256, "pw", 4096).unwrap();
    let entry = good.to_entry();
    let fields: Vec<&str> = entry.split('$').collect();
    let cases: Vec<(String, EntryError)> = vec![
        (entry.clone(), EntryError::NoUsername),
        (format!(":{entry}"), EntryError::NoUsername),
        ("bob:$scram-sha-256$4096$abc".into(), EntryError::Shape),
        (format!("bob:{entry}$extra"), EntryError::Shape),
        (
            format!("bob:{}", entry.replace("scram-sha-256", "scram-sha-1")),
            EntryError::UnknownMechanism("scram-sha-1".into()),
        ),
        (
            format!("bob:{}", entry.replace("$4096$", "$lots$")),
            EntryError::Iterations("lots".into()),
        ),
        (
            format!("bob:{}", entry.replace(fields[3], "***")),
            EntryError::Base64("salt"),
        ),
        (
            format!("bob:{}", entry.replace(fields[3], "")),
            EntryError::EmptySalt,
        ),
        (
            format!("bob:{}", entry.replace(fields[4], "AAAA")),
            EntryError::KeyLength {
                field: "StoredKey",
                expected: 32,
                found: 3,
            },
        ),
        (
            format!("bob:{}", entry.replace(fields[5], "A")),
            EntryError::Base64("ServerKey"),
        ),
        // A SHA-256 key under the SHA-512 tag.
        (
            format!("bob:{}", entry.replace("scram-sha-256", "scram-sha-512")),
            EntryError::KeyLength {
                field: "StoredKey",
                expected: 64,
                found: 32,
            },
        ),
    ];
    for (bad, error) in cases {
        let text = format!("# comment\nalice:{entry}\n{bad}\n");
        let e = CredentialStore::parse(&text).unwrap_err();
        assert_eq!(e, CredentialFileError { line: 3, error }, "{bad}");
        assert!(e.to_string().starts_with("line 3: "), "{e}");
    }
    let twice = format!("alice:{entry}\n\nalice:{entry}\n");
    assert_eq!(
        CredentialStore::parse(&twice).unwrap_err(),
        CredentialFileError {
            line: 3,
            error: EntryError::Duplicate {
                mechanism: Mechanism::Sha256,
                first_line: 1
            }
        }
    );
}

#[test]
fn the_common_shape_is_the_majoritys() {
    let mut store = CredentialStore::new();
    assert_eq!(store.common_shape(Mechanism::Sha256), (4096, 16));
    let salt20 = [7; 20];
    for (i, iterations) in [10_000, 10_000, 4096].into_iter().enumerate() {
        let c = ScramCredentials::derive_with_salt(Mechanism::Sha256, b"p", &salt20, iterations)
            .unwrap();
        store.insert(&format!("u{i}"), c).unwrap();
    }
    assert_eq!(store.common_shape(Mechanism::Sha256), (10_000, 20));
    assert_eq!(store.common_shape(Mechanism::Sha512), (4096, 16));
    // Replacing credentials moves the count with them.
    for i in 0..2 {
        let c = ScramCredentials::derive_with_salt(Mechanism::Sha256, b"p", &salt20, 4096).unwrap();
        store.insert(&format!("u{i}"), c).unwrap();
    }
    assert_eq!(store.common_shape(Mechanism::Sha256), (4096, 20));
}

#[test]
fn names_a_file_cannot_hold_are_refused() {
    let c = ScramCredentials::derive(Mechanism::Sha256, "pw", 4096).unwrap();
    let mut store = CredentialStore::new();
    for bad in ["", "a\nb", " a", "a ", "#a"] {
        assert!(
            matches!(
                store.insert(bad, c.clone()),
                Err(CredentialError::Username(_))
            ),
            "{bad:?}"
        );
    }
    assert!(store.is_empty());
}

#[test]
fn debug_output_holds_no_keys() {
    let c = ScramCredentials::derive(Mechanism::Sha256, "pw", 4096).unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains(&B64.encode(&c.stored_key)));
    assert!(!shown.contains("stored"), "{shown}");
}
