//! `data-model/`: JSON ↔ canonical CBOR ↔ CID, and data-model validity.

use atrelay::wire::cbor::Value;
use atrelay::wire::cid::Cid;
use atrelay::wire::json::{decode_base64, record_from_json, value_from_json, value_to_json};

use crate::common::{interop, read_json};

#[test]
fn fixtures_round_trip_byte_exact() {
    let cases = read_json(interop("data-model/data-model-fixtures.json"));
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let json = &c["json"];
        let cbor = decode_base64(c["cbor_base64"].as_str().unwrap()).unwrap();
        let cid: Cid = c["cid"].as_str().unwrap().parse().unwrap();

        // JSON → data model → canonical CBOR: exact bytes and CID.
        let value = value_from_json(json).unwrap();
        assert_eq!(value.to_cbor(), cbor, "encoding of {json}");
        assert_eq!(value.cid(), cid);

        // CBOR → data model (strict decode) → CBOR and JSON again.
        let decoded = Value::decode(&cbor).unwrap();
        assert_eq!(decoded.to_cbor(), cbor);
        assert_eq!(Cid::for_cbor(&cbor), cid);
        assert_eq!(&value_to_json(&decoded), json);
    }
}

#[test]
fn valid_data_is_accepted() {
    let cases = read_json(interop("data-model/data-model-valid.json"));
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 5);
    for c in cases {
        let value = record_from_json(&c["json"]).unwrap_or_else(|e| panic!("{}: {e}", c["note"]));
        // Whatever we accept encodes canonically and decodes back identically.
        let bytes = value.to_cbor();
        assert_eq!(Value::decode(&bytes).unwrap(), value, "{}", c["note"]);
    }
}

#[test]
fn invalid_data_is_rejected() {
    let cases = read_json(interop("data-model/data-model-invalid.json"));
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 12);
    for c in cases {
        assert!(
            record_from_json(&c["json"]).is_err(),
            "accepted invalid data: {}",
            c["note"]
        );
    }
}
