//! The French NIR (numéro d'inscription au répertoire, "numéro de sécurité
//! sociale"): 13 characters and a 2-digit key, key = 97 - (number mod 97).
//! Corsica's departments 2A and 2B count as 19 and 18 for the key (the
//! number is read with 2A → 19 and 2B → 18 in place of the department).

/// Checks a NIR, spaces allowed, and returns it without spaces, upper-case.
pub fn check(raw: &str) -> Result<String, String> {
    let nir: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if nir.len() != 15 || !nir.is_ascii() {
        return Err("must be a NIR of 15 characters (13 and a 2-digit key)".into());
    }
    let (body, key) = nir.split_at(13);
    let key: u64 = key
        .parse()
        .map_err(|_| "the NIR key must be two digits".to_owned())?;
    let first = &body[..1];
    if first != "1" && first != "2" && first != "3" && first != "4" && first != "7" && first != "8"
    {
        return Err("a NIR starts with 1, 2, 3, 4, 7 or 8".into());
    }
    let department = &body[5..7];
    let numeric = match department {
        "2A" => format!("{}19{}", &body[..5], &body[7..]),
        "2B" => format!("{}18{}", &body[..5], &body[7..]),
        _ => body.to_owned(),
    };
    if !numeric.chars().all(|c| c.is_ascii_digit()) {
        return Err("a NIR is made of digits (2A or 2B for Corsica)".into());
    }
    let number: u64 = numeric
        .parse()
        .map_err(|_| "a NIR is made of digits".to_owned())?;
    if 97 - number % 97 == key {
        Ok(nir)
    } else {
        Err("the NIR key does not match the number".into())
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    fn with_key(body: &str) -> String {
        let numeric = body.replace("2A", "19").replace("2B", "18");
        let number: u64 = numeric.parse().unwrap();
        format!("{body}{:02}", 97 - number % 97)
    }

    #[test]
    fn valid_nir_is_accepted_and_normalised() {
        let nir = with_key("2690549588157");
        assert_eq!(check(&nir).unwrap(), nir);
        let spaced = format!("{} {} {}", &nir[..1], &nir[1..7], &nir[7..]);
        assert_eq!(check(&spaced).unwrap(), nir);
    }

    #[test]
    fn a_known_real_format_number_checks() {
        // 1 55 08 2A 004 018: 2A reads as 19, 97 - 1550819004018 mod 97 = 30.
        assert_eq!(check("155082A00401830").unwrap(), "155082A00401830");
    }

    #[test]
    fn corsican_departments_are_accepted() {
        let a = with_key("180052A123456");
        let b = with_key("299102B654321");
        assert!(check(&a).is_ok());
        assert!(check(&b).is_ok());
        assert!(check(&a.to_lowercase()).is_ok());
    }

    #[test]
    fn wrong_key_is_refused() {
        let nir = with_key("2690549588157");
        let key: u32 = nir[13..].parse().unwrap();
        let wrong = format!("{}{:02}", &nir[..13], (key % 97) + 1);
        assert!(check(&wrong).is_err());
    }

    #[test]
    fn malformed_nir_is_refused() {
        for bad in [
            "",
            "123",
            "9690549588157xx",
            "26905495881570000",
            "2690549X88157 10",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
