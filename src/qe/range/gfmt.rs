//! C's `printf("%g")`, for doubles in libmongocrypt's range messages.

/// Formats `v` as C's `%g` does (6 significant digits, the shorter of
/// `%e` and `%f`, trailing zeros removed; glibc's `inf`, `nan`).
pub(crate) fn c_g(v: f64) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() { "-nan" } else { "nan" }.to_owned();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf" } else { "inf" }.to_owned();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // The exponent %e would print at precision 5 (6 significant digits),
    // after rounding: it chooses between the two styles.
    let e_style = format!("{v:.5e}");
    let (mantissa, exponent) = match e_style.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (e_style.as_str(), 0),
    };
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            strip_fraction_zeros(mantissa),
            exponent.unsigned_abs()
        )
    } else {
        // 0 <= 5 - exponent <= 9.
        let decimals = usize::try_from(5 - exponent).unwrap_or(0);
        strip_fraction_zeros(&format!("{v:.decimals$}")).to_owned()
    }
}

/// `1.500` → `1.5`, `2.000` → `2`; integers unchanged.
fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::c_g;

    #[test]
    fn matches_glibc() {
        // Each as glibc's printf("%g") prints it.
        let cases: &[(f64, &str)] = &[
            (9007199254740992.0, "9.0072e+15"),
            (12.34, "12.34"),
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
            (123456.7, "123457"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (f64::MAX, "1.79769e+308"),
            (-f64::MAX, "-1.79769e+308"),
            (f64::MIN_POSITIVE, "2.22507e-308"),
            (1234567.0, "1.23457e+06"),
            (200.0, "200"),
            (6.5536, "6.5536"),
            (314.159265, "314.159"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (999999.5, "1e+06"),
        ];
        for (v, want) in cases {
            assert_eq!(c_g(*v), *want, "{v:e}");
        }
    }
}
