//! Location lookups against a MaxMind DB built for the test with `mmdb-writer`, in the
//! GeoIP2-City record shape.

use std::net::IpAddr;

use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{Value, Writer};
use tally_collect::{GeoDb, Location};

/// A City database: 81.2.69.0/24 in London, 2001:db8::/32 in Denver, 175.16.199.0/24 known
/// only down to its country.
pub fn test_city_db() -> Vec<u8> {
    let mut w = Writer::new("GeoIP2-City");
    let names = |en: &str| Value::map([("en", Value::from(en))]);
    let city = |country: &str, (region, code): (&str, &str), city: &str, lat: f64, lon: f64| {
        Value::map([
            ("country", Value::map([("iso_code", Value::from(country))])),
            (
                "subdivisions",
                Value::array([Value::map([
                    ("names", names(region)),
                    ("iso_code", Value::from(code)),
                ])]),
            ),
            ("city", Value::map([("names", names(city))])),
            (
                "location",
                Value::map([
                    ("latitude", Value::from(lat)),
                    ("longitude", Value::from(lon)),
                ]),
            ),
        ])
    };
    w.insert_value(
        "81.2.69.0/24".parse::<IpNet>().unwrap(),
        city("GB", ("England", "ENG"), "London", 51.5142, -0.0931),
    )
    .unwrap();
    w.insert_value(
        "2001:db8::/32".parse::<IpNet>().unwrap(),
        city("US", ("Colorado", "CO"), "Denver", 39.7391, -104.9866),
    )
    .unwrap();
    w.insert_value(
        "175.16.199.0/24".parse::<IpNet>().unwrap(),
        Value::map([("country", Value::map([("iso_code", Value::from("CN"))]))]),
    )
    .unwrap();
    w.to_bytes().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn addresses_resolve_to_country_region_city_and_coordinates() {
    let db = GeoDb::from_bytes(test_city_db()).unwrap();
    assert_eq!(
        db.locate(ip("81.2.69.160")),
        Location {
            country_code: Some("GB".into()),
            region: Some("England".into()),
            region_code: Some("GB-ENG".into()),
            city: Some("London".into()),
            latitude: Some(51.5142),
            longitude: Some(-0.0931),
        }
    );
    let denver = db.locate(ip("2001:db8::1"));
    assert_eq!(denver.city.as_deref(), Some("Denver"));
    assert_eq!(denver.region.as_deref(), Some("Colorado"));
    assert_eq!(denver.region_code.as_deref(), Some("US-CO"));
    let china = db.locate(ip("175.16.199.7"));
    assert_eq!(china.country_code.as_deref(), Some("CN"));
    assert_eq!((china.city, china.latitude), (None, None));
    assert_eq!(china.region_code, None);
}

#[test]
fn unknown_addresses_have_no_location() {
    let db = GeoDb::from_bytes(test_city_db()).unwrap();
    assert_eq!(db.locate(ip("8.8.8.8")), Location::default());
    assert_eq!(db.locate(ip("127.0.0.1")), Location::default());
}

#[test]
fn a_database_file_opens_from_its_path_and_garbage_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("city.mmdb");
    std::fs::write(&path, test_city_db()).unwrap();
    let db = GeoDb::open(&path).unwrap();
    assert_eq!(db.locate(ip("81.2.69.1")).city.as_deref(), Some("London"));
    std::fs::write(&path, b"not a database").unwrap();
    assert!(GeoDb::open(&path).is_err());
    assert!(GeoDb::open(&dir.path().join("missing.mmdb")).is_err());
}
