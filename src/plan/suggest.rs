//! "Did you mean": the names closest to a typo. Pure, so it tests without a network.

/// The candidates closest to `typed` (case-insensitive edit distance at most a quarter of its
/// length, at least 1; or one containing the other), at most two, all at the best distance
/// found. Nothing when `typed` is itself a candidate.
pub fn close(typed: &str, candidates: &[String]) -> Vec<String> {
    let typed_l = typed.to_lowercase();
    let limit = (typed_l.chars().count() / 4).max(1);
    let mut scored: Vec<(usize, &String)> = candidates
        .iter()
        .filter_map(|c| {
            let c_l = c.to_lowercase();
            if c_l == typed_l {
                return None;
            }
            let d = strsim::levenshtein(&typed_l, &c_l);
            let contains = typed_l.len() >= 4 && (c_l.contains(&typed_l) || typed_l.contains(&c_l));
            (d <= limit || contains).then_some((d, c))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    let best = scored.first().map_or(0, |(d, _)| *d);
    scored
        .into_iter()
        .take_while(|(d, _)| *d == best)
        .take(2)
        .map(|(_, c)| c.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::close;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_transposition_finds_the_add_on() {
        let known = names(&[
            "enketo_redis_main",
            "enketo_redis_cache",
            "redis-cubed-12345",
        ]);
        assert_eq!(
            close("enketo_redis_cahce", &known),
            vec!["enketo_redis_cache"]
        );
        assert_eq!(
            close("ENKETO_REDIS_MIAN", &known),
            vec!["enketo_redis_main"]
        );
    }

    #[test]
    fn far_names_are_not_suggested() {
        let known = names(&["enketo-demo", "shop-prod"]);
        assert!(close("billing", &known).is_empty());
        assert_eq!(close("enketo-dem", &known), vec!["enketo-demo"]);
        assert_eq!(close("enketo", &known), vec!["enketo-demo"]);
    }
}
