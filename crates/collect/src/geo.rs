//! Location from the client address, through a MaxMind DB file (GeoLite2 / GeoIP2 City or
//! Country, or any database with the same record shape) read with the `maxminddb` crate.
//!
//! Without a database the location is unknown: Tally does not guess from the language or the
//! time zone the tracker sends.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{Reader, geoip2};

use crate::error::Result;

/// Where an address is, as far as the database knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Location {
    /// ISO 3166-1 alpha-2 code, upper case.
    pub country_code: Option<String>,
    /// First-level subdivision name in English (`California`).
    pub region: Option<String>,
    /// Its ISO 3166-2 code (`US-CA`): the country code and the database's subdivision code.
    pub region_code: Option<String>,
    /// City name in English.
    pub city: Option<String>,
    /// Approximate latitude.
    pub latitude: Option<f64>,
    /// Approximate longitude.
    pub longitude: Option<f64>,
}

/// An opened MaxMind DB file.
pub struct GeoDb {
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("database_type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl GeoDb {
    /// Opens the database at `path` (read into memory once).
    pub fn open(path: &Path) -> Result<Self> {
        Ok(GeoDb {
            reader: Reader::open_readfile(path)?,
        })
    }

    /// Reads a database held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Ok(GeoDb {
            reader: Reader::from_source(bytes)?,
        })
    }

    /// The location of `addr`; every field `None` when the database has no record for it or
    /// the record cannot be read.
    pub fn locate(&self, addr: IpAddr) -> Location {
        let Ok(found) = self.reader.lookup(addr) else {
            return Location::default();
        };
        let Ok(Some(city)) = found.decode::<geoip2::City>() else {
            return Location::default();
        };
        let owned = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
        let country_code = owned(city.country.iso_code).map(|c| c.to_ascii_uppercase());
        let subdivision = city.subdivisions.first();
        let region_code = match (&country_code, subdivision.and_then(|s| s.iso_code)) {
            (Some(country), Some(code)) if !code.is_empty() => {
                Some(format!("{country}-{}", code.to_ascii_uppercase()))
            }
            _ => None,
        };
        Location {
            region: owned(subdivision.and_then(|s| s.names.english)),
            region_code,
            country_code,
            city: owned(city.city.names.english),
            latitude: city.location.latitude.filter(|l| l.is_finite()),
            longitude: city.location.longitude.filter(|l| l.is_finite()),
        }
    }
}
