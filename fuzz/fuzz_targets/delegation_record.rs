//! Bytes through the stored delegation record's strict parser. An accepted record must write back to a
//! form that parses to the same record: nothing is half-understood or lost.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_broker::delegation::DelegationRecord;
use token_broker::delegation::record::MAX_AUDIENCES;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = DelegationRecord::from_json(data) {
        assert!((1..=MAX_AUDIENCES).contains(&record.audiences.len()));
        assert!(record.created <= record.expires_at);
        let written = record.to_json();
        assert_eq!(DelegationRecord::from_json(&written).as_ref(), Ok(&record));
    }
});
