//! Backstage releases and the package versions they ship, from the release data built by
//! `scripts/update-release-data.py` (`data/releases.json`, embedded): the release a tree says it is
//! (`backstage.json`), the release a tree's `@backstage/*` versions match best when it does not say,
//! and the first release that shipped a package version. Pure: the data is compiled in.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

const EMBEDDED: &str = include_str!("../../data/releases.json");

/// The release data: every release in order, and per package and version the releases that ship it.
#[derive(Debug, Deserialize)]
pub struct ReleaseData {
    releases: Vec<String>,
    /// Releases known only from `@backstage/create-app`'s version map (a subset of the packages),
    /// with where the map came from.
    #[serde(default)]
    partial: BTreeMap<String, String>,
    /// package → version → ranges of indexes into `releases` (inclusive).
    packages: HashMap<String, HashMap<String, Vec<[usize; 2]>>>,
}

/// The release a tree was inferred to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inference {
    pub release: String,
    /// Installed `@backstage/*` packages whose version is the release's.
    pub matched: usize,
    /// Installed `@backstage/*` packages the release ships at all (at this or another version).
    pub compared: usize,
    /// Other releases that match exactly as well (patch releases often ship the same versions).
    pub also_matching: Vec<String>,
    /// Whether the release's data is partial (from `@backstage/create-app`'s version map).
    pub partial: bool,
}

impl ReleaseData {
    pub fn parse(text: &str) -> Result<ReleaseData, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The data compiled into the binary.
    pub fn embedded() -> &'static ReleaseData {
        static DATA: OnceLock<ReleaseData> = OnceLock::new();
        DATA.get_or_init(|| ReleaseData::parse(EMBEDDED).expect("data/releases.json is valid"))
    }

    /// The newest release the data knows.
    pub fn latest(&self) -> Option<&str> {
        self.releases.last().map(String::as_str)
    }

    /// Whether the data knows this release.
    pub fn knows(&self, release: &str) -> bool {
        self.releases.iter().any(|r| r == release)
    }

    /// The first release that shipped `package` at `version`.
    pub fn first_release_of(&self, package: &str, version: &str) -> Option<&str> {
        let ranges = self.packages.get(package)?.get(version)?;
        let first = ranges.iter().map(|r| r[0]).min()?;
        self.releases.get(first).map(String::as_str)
    }

    /// The release whose versions the installed `@backstage/*` packages match best: the most
    /// packages at the release's version less those at another version, then the fewest at another
    /// version; the oldest of equals, with the others in `also_matching`; `None` when no
    /// package matches any release.
    pub fn infer<'a>(
        &self,
        installed: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Inference> {
        let mut matched = vec![0usize; self.releases.len()];
        let mut shipped = vec![0usize; self.releases.len()];
        for (package, version) in installed {
            let Some(versions) = self.packages.get(package) else {
                continue;
            };
            for (v, ranges) in versions {
                for &[from, to] in ranges {
                    for index in from..=to.min(self.releases.len().saturating_sub(1)) {
                        shipped[index] += 1;
                        if v == version {
                            matched[index] += 1;
                        }
                    }
                }
            }
        }
        // Net evidence: packages at the release's version count for it, packages the release ships
        // at another version against it. Counting matches alone would let an older release with a
        // full manifest beat a newer one whose data is partial, only because it lists more of the
        // packages that did not change in between.
        let score = |i: usize| {
            let differing = shipped[i] - matched[i];
            (
                matched[i] as i64 - differing as i64,
                std::cmp::Reverse(differing),
            )
        };
        let best = (0..self.releases.len())
            .filter(|&i| matched[i] > 0)
            .max_by_key(|&i| (score(i), std::cmp::Reverse(i)))?;
        let also_matching = (0..self.releases.len())
            .filter(|&i| i != best && score(i) == score(best))
            .map(|i| self.releases[i].clone())
            .collect();
        let release = self.releases[best].clone();
        Some(Inference {
            partial: self.partial.contains_key(&release),
            release,
            matched: matched[best],
            compared: shipped[best],
            also_matching,
        })
    }
}

/// The release a `backstage.json` names (`{"version": "1.55.0"}`).
pub fn release_of_backstage_json(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value["version"]
        .as_str()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"{"releases":["1.0.0","1.0.1","1.1.0"],"partial":{"1.1.0":"@backstage/create-app@0.1.0"},
      "packages":{"@backstage/a":{"1.0.0":[[0,1]],"1.1.0":[[2,2]]},
                  "@backstage/b":{"2.0.0":[[0,0]],"2.0.1":[[1,2]]},
                  "@backstage/c":{"3.0.0":[[0,1]]}}}"#;

    #[test]
    fn inference_prefers_most_matches_then_fewest_differences() {
        let data = ReleaseData::parse(SMALL).unwrap();
        let got = data
            .infer([
                ("@backstage/a", "1.0.0"),
                ("@backstage/b", "2.0.1"),
                ("@backstage/c", "3.0.0"),
            ])
            .unwrap();
        assert_eq!(
            got,
            Inference {
                release: "1.0.1".into(),
                matched: 3,
                compared: 3,
                also_matching: vec![],
                partial: false
            }
        );
        // Only `a` is installed: 1.0.0 and 1.0.1 both ship it; the first is named, the other listed.
        let got = data.infer([("@backstage/a", "1.0.0")]).unwrap();
        assert_eq!(
            (got.release.as_str(), got.also_matching.as_slice()),
            ("1.0.0", &["1.0.1".to_string()][..])
        );
        let got = data
            .infer([("@backstage/a", "1.1.0"), ("@backstage/b", "2.0.1")])
            .unwrap();
        assert_eq!(
            (got.release.as_str(), got.matched, got.compared, got.partial),
            ("1.1.0", 2, 2, true)
        );
        assert_eq!(
            data.infer([("@backstage/a", "9.9.9"), ("left-pad", "1.0.0")]),
            None
        );
    }

    #[test]
    fn a_partial_release_is_not_beaten_by_unchanged_packages_of_an_older_full_one() {
        // 1.0.0 lists all four; 1.1.0 (partial) only a and b, and a changed in it.
        let data = ReleaseData::parse(
            r#"{"releases":["1.0.0","1.1.0"],"partial":{"1.1.0":"x"},"packages":{
              "a":{"1":[[0,0]],"2":[[1,1]]},"b":{"1":[[0,1]]},"c":{"1":[[0,0]]},"d":{"1":[[0,0]]}}}"#,
        )
        .unwrap();
        let got = data
            .infer([("a", "2"), ("b", "1"), ("c", "1"), ("d", "1")])
            .unwrap();
        assert_eq!(
            (got.release.as_str(), got.matched, got.compared, got.partial),
            ("1.1.0", 2, 2, true)
        );
        // A tree of 1.0.0 still infers 1.0.0.
        let got = data
            .infer([("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")])
            .unwrap();
        assert_eq!((got.release.as_str(), got.matched), ("1.0.0", 4));
    }

    #[test]
    fn first_release_of_a_package_version() {
        let data = ReleaseData::parse(SMALL).unwrap();
        assert_eq!(
            data.first_release_of("@backstage/b", "2.0.1"),
            Some("1.0.1")
        );
        assert_eq!(data.first_release_of("@backstage/b", "2.0.2"), None);
        assert_eq!(data.latest(), Some("1.1.0"));
    }

    #[test]
    fn the_embedded_data_knows_real_releases() {
        let data = ReleaseData::embedded();
        assert_eq!(
            data.first_release_of("@backstage/plugin-catalog-backend", "3.8.0"),
            Some("1.52.0")
        );
        assert_eq!(
            data.first_release_of("@backstage/plugin-catalog-backend", "4.0.0"),
            Some("1.55.0")
        );
        assert_eq!(data.latest(), Some("1.55.0"));
        assert!(data.knows("1.54.0"));
        let got = data
            .infer([
                ("@backstage/plugin-catalog-backend", "4.0.0"),
                ("@backstage/plugin-auth-backend", "0.30.1"),
                ("@backstage/backend-defaults", "0.18.0"),
            ])
            .unwrap();
        assert_eq!(
            (got.release.as_str(), got.matched, got.compared, got.partial),
            ("1.55.0", 3, 3, true)
        );
    }

    /// Every release's own package versions infer that release (or one that ships exactly the same
    /// versions, which it then lists as matching equally).
    #[test]
    fn every_release_of_the_embedded_data_infers_itself() {
        let data = ReleaseData::embedded();
        for (index, release) in data.releases.iter().enumerate() {
            let manifest: Vec<(&str, &str)> = data
                .packages
                .iter()
                .flat_map(|(package, versions)| {
                    versions
                        .iter()
                        .filter(|(_, ranges)| ranges.iter().any(|r| (r[0]..=r[1]).contains(&index)))
                        .map(move |(version, _)| (package.as_str(), version.as_str()))
                })
                .collect();
            let got = data.infer(manifest.iter().copied()).unwrap();
            assert!(
                &got.release == release || got.also_matching.contains(release),
                "{release}: inferred {got:?}"
            );
            assert_eq!(got.matched, manifest.len(), "{release}");
        }
    }

    #[test]
    fn backstage_json_names_the_release() {
        assert_eq!(
            release_of_backstage_json(r#"{"version": "1.55.0"}"#).as_deref(),
            Some("1.55.0")
        );
        assert_eq!(release_of_backstage_json(r#"{"version": ""}"#), None);
        assert_eq!(release_of_backstage_json("not json"), None);
    }
}
