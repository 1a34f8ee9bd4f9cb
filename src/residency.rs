//! EU residency and data in transit: which storage regions are accepted at
//! start, which hosts count as loopback, and the endpoint TLS rule.
//!
//! The list holds regions whose data centres are inside the EU/EEA. Region
//! names are labels chosen by each provider, so the list is per provider and
//! deliberately strict: AWS London (`eu-west-2`) and Zurich (`eu-central-2`)
//! are outside the EU and are not on it; add them (or any other region your
//! data-processing agreement covers) with `storage.allowed_regions`.

/// Built-in allow-list: (region, where).
pub const EU_REGIONS: &[(&str, &str)] = &[
    // AWS
    ("eu-central-1", "AWS Frankfurt, DE"),
    ("eu-west-1", "AWS Ireland, IE"),
    ("eu-west-3", "AWS Paris, FR"),
    ("eu-north-1", "AWS Stockholm, SE"),
    ("eu-south-1", "AWS Milan, IT"),
    ("eu-south-2", "AWS Spain, ES"),
    ("eusc-de-east-1", "AWS European Sovereign Cloud, DE"),
    // Hetzner Object Storage
    ("fsn1", "Hetzner Falkenstein, DE"),
    ("nbg1", "Hetzner Nuremberg, DE"),
    ("hel1", "Hetzner Helsinki, FI"),
    // OVHcloud
    ("gra", "OVHcloud Gravelines, FR"),
    ("sbg", "OVHcloud Strasbourg, FR"),
    ("rbx", "OVHcloud Roubaix, FR"),
    ("de", "OVHcloud Frankfurt, DE / IONOS Frankfurt, DE"),
    ("waw", "OVHcloud Warsaw, PL"),
    ("eu-west-par", "OVHcloud Paris 3-AZ, FR"),
    ("eu-south-mil", "OVHcloud Milan, IT"),
    // Scaleway
    ("fr-par", "Scaleway Paris, FR"),
    ("nl-ams", "Scaleway Amsterdam, NL"),
    ("pl-waw", "Scaleway Warsaw, PL"),
    // IONOS (its `eu-central-2` Berlin collides with AWS Zurich: add it explicitly)
    ("eu-central-3", "IONOS Berlin, DE"),
    // Exoscale
    ("de-fra-1", "Exoscale Frankfurt, DE"),
    ("de-muc-1", "Exoscale Munich, DE"),
    ("at-vie-1", "Exoscale Vienna, AT"),
    ("at-vie-2", "Exoscale Vienna, AT"),
    ("bg-sof-1", "Exoscale Sofia, BG"),
    // Backblaze B2
    ("eu-central-003", "Backblaze Amsterdam, NL"),
    // UpCloud
    ("europe-1", "UpCloud Helsinki, FI"),
];

/// Accepts a region on the EU list or on the operator's extra list.
///
/// # Errors
/// A message naming the region and how to allow it.
pub fn check_region(region: &str, extra: &[String]) -> Result<(), String> {
    let r = region.trim();
    if EU_REGIONS
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case(r))
        || extra.iter().any(|x| x.eq_ignore_ascii_case(r))
    {
        return Ok(());
    }
    Err(format!(
        "region {region:?} is not on the EU allow-list (e.g. eu-central-1, eu-north-1, fsn1, fr-par); \
         if it is inside the EU, add it to storage.allowed_regions"
    ))
}

/// True for `localhost`, 127.0.0.0/8 and ::1.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses plain-HTTP endpoints unless they are on loopback.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| format!("not a URL ({e}); use https://host[:port]"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.host_str().is_some_and(is_loopback_host) => Ok(()),
        "http" => Err(
            "plain HTTP to a remote endpoint is refused (data in transit must be encrypted); use https://"
                .into(),
        ),
        other => Err(format!("scheme {other}:// is not supported; use https://")),
    }
}
