//! Field validation at the edge: raw request values are checked once and
//! turned into clean values, every problem collected with the field it
//! concerns (the `details` of a 422).

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// One field's problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every problem found in one request.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::default();
        errors.add(field, message);
        errors
    }

    /// Notes a missing required value, unless the field already has a
    /// problem (an invalid value is not also reported as missing).
    pub fn require<T>(&mut self, value: &Option<T>, field: &str) {
        if value.is_none() && !self.0.iter().any(|e| e.field == field) {
            self.add(field, "is required");
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was found.
    pub fn finish<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    pub fn into_details(self) -> Vec<FieldError> {
        self.0
    }
}

/// A struct nested in a request body, read only from a JSON object (serde
/// would also take an array, filling the fields in order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nested<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOnly<T> {
            type Value = T;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectOnly(std::marker::PhantomData))
            .map(Nested)
    }
}

/// A field of a partial update: absent (keep), `null` (clear) or a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(value) => Patch::Value(value),
            None => Patch::Null,
        })
    }
}

impl<T> Patch<T> {
    /// Applies the change to `current`, validating a new value with `check`.
    pub fn apply<U>(
        self,
        current: Option<U>,
        check: impl FnOnce(T) -> Result<U, String>,
        field: &str,
        errors: &mut FieldErrors,
    ) -> Option<U> {
        match self {
            Patch::Absent => current,
            Patch::Null => None,
            Patch::Value(value) => match check(value) {
                Ok(clean) => Some(clean),
                Err(message) => {
                    errors.add(field, message);
                    current
                }
            },
        }
    }

    /// Like [`Patch::apply`] for a field that must end up with a value:
    /// `null`, or absence with nothing to keep, is "is required".
    pub fn apply_required<U>(
        self,
        current: Option<U>,
        check: impl FnOnce(T) -> Result<U, String>,
        field: &str,
        errors: &mut FieldErrors,
    ) -> Option<U> {
        let missing = match &self {
            Patch::Absent => current.is_none(),
            Patch::Null => true,
            Patch::Value(_) => false,
        };
        if missing {
            errors.add(field, "is required");
            return None;
        }
        self.apply(current, check, field, errors)
    }

    /// Whether the request names this field at all (a value or `null`).
    pub fn is_present(&self) -> bool {
        !matches!(self, Patch::Absent)
    }
}

/// Trimmed text of 1 to `max` characters without control characters.
pub fn text(max: usize) -> impl Fn(String) -> Result<String, String> {
    move |raw| {
        let value = raw.trim();
        if value.is_empty() {
            Err("must not be empty".into())
        } else if value.chars().count() > max {
            Err(format!("must be at most {max} characters"))
        } else if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            Err("must not contain control characters".into())
        } else {
            Ok(value.to_owned())
        }
    }
}

/// A plausible email address, kept as given but trimmed.
pub fn email(raw: String) -> Result<String, String> {
    let value = raw.trim();
    let valid = value.len() <= 254
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        })
        && value.matches('@').count() == 1
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(value.to_owned())
    } else {
        Err("must be a valid email address".into())
    }
}

/// A phone number: digits with optional `+`, spaces, dots, dashes, brackets.
pub fn phone(raw: String) -> Result<String, String> {
    let value = raw.trim();
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let allowed = value
        .chars()
        .all(|c| c.is_ascii_digit() || " +.-()".contains(c));
    if allowed && (4..=20).contains(&digits) && value.len() <= 30 {
        Ok(value.to_owned())
    } else {
        Err("must be a phone number (digits, spaces, + . - ( ))".into())
    }
}

/// An ISO 3166-1 alpha-2 country code, upper-cased.
pub fn country(raw: String) -> Result<String, String> {
    let value = raw.trim().to_ascii_uppercase();
    if value.len() == 2 && value.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(value)
    } else {
        Err("must be an ISO 3166-1 alpha-2 country code such as FR".into())
    }
}

/// A `YYYY-MM-DD` date.
pub fn date(raw: String) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| "must be a date as YYYY-MM-DD".into())
}

/// An RFC 3339 timestamp (any offset), as UTC.
pub fn timestamp(raw: String) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| "must be an RFC 3339 timestamp such as 2026-03-01T09:30:00Z".into())
}

/// One of `allowed`.
pub fn one_of(allowed: &'static [&'static str]) -> impl Fn(String) -> Result<String, String> {
    move |raw| {
        if allowed.contains(&raw.as_str()) {
            Ok(raw)
        } else {
            Err(format!("must be one of: {}", allowed.join(", ")))
        }
    }
}

/// A new password: 8 to 1024 characters.
pub fn password(raw: String) -> Result<String, String> {
    match raw.chars().count() {
        0..=7 => Err("must be at least 8 characters".into()),
        8..=1024 => Ok(raw),
        _ => Err("must be at most 1024 characters".into()),
    }
}

/// Checks a required field that the request must carry.
pub fn required<T, U>(
    value: Option<T>,
    check: impl FnOnce(T) -> Result<U, String>,
    field: &str,
    errors: &mut FieldErrors,
) -> Option<U> {
    match value {
        None => {
            errors.add(field, "is required");
            None
        }
        Some(value) => check(value).map_err(|m| errors.add(field, m)).ok(),
    }
}

/// Checks an optional field when present.
pub fn optional<T, U>(
    value: Option<T>,
    check: impl FnOnce(T) -> Result<U, String>,
    field: &str,
    errors: &mut FieldErrors,
) -> Option<U> {
    value.and_then(|value| check(value).map_err(|m| errors.add(field, m)).ok())
}

/// The names whose flag is set: the fields a request carries, for the audit
/// trail (names only, never values).
pub fn present_names<const N: usize>(fields: [(&'static str, bool); N]) -> Vec<&'static str> {
    fields
        .into_iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| name)
        .collect()
}

/// OpenAPI schemas stating what the checkers above accept, for
/// `#[schema(schema_with = ...)]` on request fields: a client (or a
/// property-based test) can then tell a valid value from an invalid one.
/// The `_or_null` forms are for fields where `null` clears the value.
pub mod schema {
    use std::borrow::Cow;
    use std::marker::PhantomData;

    use utoipa::openapi::schema::{
        KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
    };
    use utoipa::openapi::RefOr;
    use utoipa::{PartialSchema, ToSchema};

    /// `char::is_whitespace`, what `str::trim` removes.
    const WHITESPACE: &[(char, char)] = &[
        ('\t', '\r'),
        (' ', ' '),
        ('\u{85}', '\u{85}'),
        ('\u{a0}', '\u{a0}'),
        ('\u{1680}', '\u{1680}'),
        ('\u{2000}', '\u{200a}'),
        ('\u{2028}', '\u{2029}'),
        ('\u{202f}', '\u{202f}'),
        ('\u{205f}', '\u{205f}'),
        ('\u{3000}', '\u{3000}'),
    ];
    /// The control characters [`super::text`] refuses: all but tab and newline.
    const CONTROL: &[(char, char)] = &[
        ('\u{0}', '\u{8}'),
        ('\u{b}', '\u{1f}'),
        ('\u{7f}', '\u{9f}'),
    ];

    /// Ranges as the body of a regular expression class, in `\uXXXX`
    /// escapes (read alike by ECMA-262, Python and Rust engines).
    fn class(ranges: &[(char, char)]) -> String {
        ranges
            .iter()
            .map(|&(first, last)| {
                if first == last {
                    format!("\\u{:04x}", u32::from(first))
                } else {
                    format!("\\u{:04x}-\\u{:04x}", u32::from(first), u32::from(last))
                }
            })
            .collect()
    }
    /// The longest text whose trimmed length the pattern itself bounds:
    /// longer bounds compile too large for some regex engines, so for those
    /// `maxLength` bounds the raw text instead.
    const PATTERN_BOUND: usize = 1000;

    fn string(nullable: bool) -> ObjectBuilder {
        ObjectBuilder::new().schema_type(if nullable {
            SchemaType::from_iter([Type::String, Type::Null])
        } else {
            SchemaType::new(Type::String)
        })
    }

    fn text_schema(max: usize, nullable: bool) -> Object {
        let (w, c) = (class(WHITESPACE), class(CONTROL));
        if max <= PATTERN_BOUND {
            let inner = max.saturating_sub(2);
            string(nullable)
                .pattern(Some(format!(
                    "^[{w}]*[^{w}{c}](?:[^{c}]{{0,{inner}}}[^{w}{c}])?[{w}]*$"
                )))
                .build()
        } else {
            string(nullable)
                .pattern(Some(format!(
                    "^[{w}]*[^{w}{c}](?:[^{c}]*[^{w}{c}])?[{w}]*$"
                )))
                .max_length(Some(max))
                .build()
        }
    }

    /// [`super::text`]`(MAX)`: once trimmed, 1 to `MAX` characters, none
    /// of them a control character but tab and newline.
    pub fn text<const MAX: usize>() -> Object {
        text_schema(MAX, false)
    }

    pub fn text_or_null<const MAX: usize>() -> Object {
        text_schema(MAX, true)
    }

    fn email_schema(nullable: bool) -> Object {
        string(nullable)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(254))
            .build()
    }

    /// [`super::email`].
    pub fn email() -> Object {
        email_schema(false)
    }

    pub fn email_or_null() -> Object {
        email_schema(true)
    }

    /// [`super::phone`]: 4 to 20 digits among spaces, `+`, `.`, `-`, brackets.
    pub fn phone_or_null() -> Object {
        string(true)
            .pattern(Some(r"^[ +.()-]*(?:[0-9][ +.()-]*){4,20}$"))
            .max_length(Some(30))
            .build()
    }

    /// `letters` ASCII letters, any case, whitespace around them trimmed.
    fn code_schema(letters: usize, nullable: bool) -> Object {
        let w = class(WHITESPACE);
        string(nullable)
            .pattern(Some(format!("^[{w}]*[A-Za-z]{{{letters}}}[{w}]*$")))
            .build()
    }

    /// [`super::country`]: an ISO 3166-1 alpha-2 code.
    pub fn country_or_null() -> Object {
        code_schema(2, true)
    }

    /// An ISO 4217 currency code.
    pub fn currency() -> Object {
        code_schema(3, false)
    }

    pub fn currency_or_null() -> Object {
        code_schema(3, true)
    }

    /// [`super::password`].
    pub fn password() -> Object {
        string(false)
            .min_length(Some(8))
            .max_length(Some(1024))
            .build()
    }

    /// [`super::one_of`].
    pub fn one_of(allowed: &[&str], nullable: bool) -> Object {
        let values = allowed.iter().map(|value| serde_json::json!(value));
        let values: Vec<_> = if nullable {
            values.chain([serde_json::Value::Null]).collect()
        } else {
            values.collect()
        };
        string(nullable).enum_values(Some(values)).build()
    }

    /// A create-or-update request type whose create must carry some fields.
    pub trait Creatable: ToSchema {
        /// The component name of a create's body, e.g. `NewPatient`.
        const CREATE_NAME: &'static str;
        /// What a create must carry.
        const REQUIRED: &'static [&'static str];
    }

    /// The body of a create: the request's schema with
    /// [`Creatable::REQUIRED`] required. Named through an alias
    /// (`pub type NewPatient = Create<PatientInput>`, then
    /// `request_body = NewPatient`): the path macro takes no generic type.
    pub struct Create<T>(PhantomData<T>);

    impl<T: Creatable> PartialSchema for Create<T> {
        fn schema() -> RefOr<Schema> {
            let mut schema = T::schema();
            if let RefOr::T(Schema::Object(object)) = &mut schema {
                object
                    .required
                    .extend(T::REQUIRED.iter().map(|field| (*field).to_owned()));
            }
            schema
        }
    }

    impl<T: Creatable> ToSchema for Create<T> {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed(T::CREATE_NAME)
        }

        fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            T::schemas(schemas);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn within(ranges: &[(char, char)], c: char) -> bool {
            ranges
                .iter()
                .any(|&(first, last)| (first..=last).contains(&c))
        }

        /// The patterns are built from these classes: they must be exactly
        /// what `trim` removes and what `text` refuses.
        #[test]
        fn classes_are_exactly_the_checkers_characters() {
            for c in (0..=0x10FFFF).filter_map(char::from_u32) {
                assert_eq!(within(WHITESPACE, c), c.is_whitespace(), "{c:?}");
                let refused = c.is_control() && c != '\t' && c != '\n';
                assert_eq!(within(CONTROL, c), refused, "{c:?}");
            }
            assert_eq!(class(&[('a', 'a'), ('\t', '\r')]), r"\u0061\u0009-\u000d");
        }

        #[test]
        fn long_texts_are_bounded_by_max_length() {
            let short = text::<100>();
            assert!(short.pattern.unwrap().contains("{0,98}"));
            assert_eq!(short.max_length, None);
            let long = text::<10_000>();
            assert_eq!(long.max_length, Some(10_000));
        }

        #[test]
        fn nullable_choices_allow_null() {
            let choices = one_of(&["a", "b"], true);
            assert_eq!(
                choices.enum_values,
                Some(vec![
                    serde_json::json!("a"),
                    serde_json::json!("b"),
                    serde_json::Value::Null
                ])
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rules() {
        assert!(email(" Ana@Example.fr ".into()).is_ok());
        for bad in [
            "", "a", "a@b", "@b.fr", "a@@b.fr", "a b@c.fr", "a@.fr", "a@b..fr",
        ] {
            assert!(email(bad.into()).is_err(), "{bad}");
        }
    }

    #[test]
    fn required_fields_cannot_be_missing_or_cleared() {
        let mut errors = FieldErrors::default();
        let check = |v: i32| Ok::<_, String>(v);
        assert_eq!(
            Patch::Absent.apply_required(Some(1), check, "a", &mut errors),
            Some(1)
        );
        assert_eq!(
            Patch::Value(2).apply_required(None, check, "b", &mut errors),
            Some(2)
        );
        assert!(errors.is_empty());
        assert_eq!(
            Patch::Absent.apply_required(None, check, "c", &mut errors),
            None
        );
        assert_eq!(
            Patch::Null.apply_required(Some(1), check, "d", &mut errors),
            None
        );
        let fields: Vec<String> = errors.into_details().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["c", "d"]);
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc() {
        let t = timestamp("2026-03-01T10:30:00+01:00".into()).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-01T09:30:00+00:00");
        assert!(timestamp("2026-03-01 10:30".into()).is_err());
        assert!(timestamp("2026-03-01".into()).is_err());
    }

    #[test]
    fn phone_rules() {
        assert!(phone("+33 1 23 45 67 89".into()).is_ok());
        assert!(phone("12".into()).is_err());
        assert!(phone("call me".into()).is_err());
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(text(5)("  abc ".into()).unwrap(), "abc");
        assert!(text(5)("   ".into()).is_err());
        assert!(text(5)("abcdef".into()).is_err());
        assert!(text(5)("a\u{0}b".into()).is_err());
    }

    #[test]
    fn a_bad_value_is_not_also_reported_missing() {
        let mut errors = FieldErrors::default();
        errors.add("name", "must not be empty");
        errors.require(&None::<String>, "name");
        errors.require(&None::<String>, "code");
        errors.require(&Some(1), "price");
        let fields: Vec<String> = errors.into_details().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "code"]);
    }

    #[test]
    fn nested_structs_come_from_objects_only() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Pair {
            a: i32,
            b: Option<i32>,
        }
        let read = |json| serde_json::from_str::<Nested<Pair>>(json);
        assert_eq!(read(r#"{"a": 1}"#).unwrap().0, Pair { a: 1, b: None });
        assert!(read("[1, 2]").is_err());
        assert!(
            serde_json::from_str::<Pair>("[1, 2]").is_ok(),
            "serde alone takes arrays"
        );
    }

    #[test]
    fn patch_keeps_clears_or_replaces() {
        let mut errors = FieldErrors::default();
        let keep: Patch<String> = Patch::Absent;
        assert_eq!(keep.apply(Some(1), |_| Ok(2), "f", &mut errors), Some(1));
        assert_eq!(
            Patch::<String>::Null.apply(Some(1), |_| Ok(2), "f", &mut errors),
            None
        );
        assert_eq!(
            Patch::Value("x".to_owned()).apply(Some(1), |_| Ok(2), "f", &mut errors),
            Some(2)
        );
        assert!(errors.is_empty());
        Patch::Value("x".to_owned()).apply(
            Some(1),
            |_| Err::<i32, _>("bad".into()),
            "f",
            &mut errors,
        );
        assert_eq!(errors.into_details()[0].field, "f");
    }
}
