//! PACK: SoftEther's typed key/value container (spec §2, Mayaqua/Pack.c).
//! A [`Pack`] is an ordered list of named [`Element`]s; each element holds one
//! or more values of a single [`ValueType`]. Invariants kept by this type:
//! names are unique under ASCII case-insensitive comparison (setters replace,
//! the decoder rejects duplicates), and every element decoded from the wire
//! has at least one value. Encoding re-checks the name rules and non-empty
//! arrays, so a `Pack` that encodes is always one SoftEther will accept.
//!
//! Getters mirror `PackGetX`: the name is matched case-insensitively and the
//! element **must have the requested type** (a STR is not a UNISTR, an INT is
//! not an INT64). Strict getters return a [`PackError`] naming the field;
//! `*_or_zero` getters reproduce SoftEther's "missing or mistyped reads as 0".

mod codec;
mod ip;

pub use codec::{MAX_NAME_LEN, PackLimits};
pub use ip::{ipv4_from_pack_int, ipv4_to_pack_int};

/// Wire type codes (Mayaqua/Pack.h `VALUE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    Int = 0,
    Data = 1,
    Str = 2,
    UniStr = 3,
    Int64 = 4,
}

impl ValueType {
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => ValueType::Int,
            1 => ValueType::Data,
            2 => ValueType::Str,
            3 => ValueType::UniStr,
            4 => ValueType::Int64,
            _ => return None,
        })
    }
}

/// The values of one element, all of one type. A one-value element is the
/// ordinary case; more values form an array (`PackAddIntEx` with index/total).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Values {
    Int(Vec<u32>),
    Data(Vec<Vec<u8>>),
    /// STR values are kept as raw bytes: SoftEther writes them "as-is" and a
    /// peer's locale-encoded host name must not fail the whole login. UTF-8
    /// is checked by [`Pack::str`] when a field is actually used.
    Str(Vec<Vec<u8>>),
    /// UNISTR values, without the trailing NUL the wire form carries.
    UniStr(Vec<String>),
    Int64(Vec<u64>),
}

impl Values {
    pub fn value_type(&self) -> ValueType {
        match self {
            Values::Int(_) => ValueType::Int,
            Values::Data(_) => ValueType::Data,
            Values::Str(_) => ValueType::Str,
            Values::UniStr(_) => ValueType::UniStr,
            Values::Int64(_) => ValueType::Int64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Values::Int(v) => v.len(),
            Values::Data(v) => v.len(),
            Values::Str(v) => v.len(),
            Values::UniStr(v) => v.len(),
            Values::Int64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One named element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub(crate) name: String,
    pub(crate) values: Values,
}

impl Element {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn values(&self) -> &Values {
        &self.values
    }
}

/// Errors of the PACK layer: wire decoding, encoding, and typed access.
/// Every variant names the element (or wire part) concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("PACK truncated while reading {part} of element {element:?}")]
    Truncated { part: &'static str, element: String },
    #[error("PACK body of {len} bytes exceeds the cap of {max}")]
    BodyTooLarge { len: usize, max: usize },
    #[error("PACK declares {count} elements, cap is {max}")]
    TooManyElements { count: u32, max: u32 },
    #[error("element {element:?} declares {count} values, cap is {max}")]
    TooManyValues {
        element: String,
        count: u32,
        max: u32,
    },
    #[error("PACK holds more than {max} values in total")]
    TooManyTotalValues { max: u32 },
    #[error("element {element:?} has no values")]
    EmptyElement { element: String },
    #[error("element name {element:?} appears twice (names are case-insensitive)")]
    DuplicateName { element: String },
    #[error("element name has length 0")]
    EmptyName,
    #[error("element name of {len} bytes exceeds {max}")]
    NameTooLong { len: usize, max: usize },
    #[error("element name is not UTF-8 or contains NUL")]
    InvalidName,
    #[error("element {element:?} has unknown value type {code}")]
    UnknownType { element: String, code: u32 },
    #[error("UNISTR value of element {element:?} is empty, unterminated or holds a NUL")]
    BadUniStr { element: String },
    #[error("value of element {element:?} is not valid UTF-8")]
    NotUtf8 { element: String },
    #[error("{count} trailing bytes after the PACK")]
    TrailingBytes { count: usize },
    #[error("value of element {element:?} is too large to encode")]
    ValueTooLarge { element: String },
    #[error("required field {field:?} is missing")]
    Missing { field: String },
    #[error("field {field:?} has type {found:?}, expected {expected:?}")]
    WrongType {
        field: String,
        expected: ValueType,
        found: ValueType,
    },
    #[error("field {field:?} is {found} bytes long, expected {expected}")]
    WrongLength {
        field: String,
        expected: usize,
        found: usize,
    },
}

/// An ordered, case-insensitively keyed set of elements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pack {
    pub(crate) elements: Vec<Element>,
}

impl Pack {
    pub fn new() -> Self {
        Pack::default()
    }

    pub fn elements(&self) -> &[Element] {
        &self.elements
    }

    pub fn len(&self) -> usize {
        self.elements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// Case-insensitive lookup (`ComparePackName` uses `StrCmpi`).
    pub fn get(&self, name: &str) -> Option<&Values> {
        self.elements
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
            .map(|e| &e.values)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Insert or replace `name`. A replaced element keeps its position and
    /// takes the new spelling, so the no-duplicate invariant holds.
    pub fn set(&mut self, name: &str, values: Values) -> &mut Self {
        match self
            .elements
            .iter_mut()
            .find(|e| e.name.eq_ignore_ascii_case(name))
        {
            Some(e) => {
                e.name = name.to_owned();
                e.values = values;
            }
            None => self.elements.push(Element {
                name: name.to_owned(),
                values,
            }),
        }
        self
    }

    pub fn remove(&mut self, name: &str) -> Option<Values> {
        let i = self
            .elements
            .iter()
            .position(|e| e.name.eq_ignore_ascii_case(name))?;
        Some(self.elements.remove(i).values)
    }

    pub fn set_int(&mut self, name: &str, v: u32) -> &mut Self {
        self.set(name, Values::Int(vec![v]))
    }
    /// Booleans are INT 0/1 (`PackAddBool`).
    pub fn set_bool(&mut self, name: &str, v: bool) -> &mut Self {
        self.set_int(name, u32::from(v))
    }
    pub fn set_int64(&mut self, name: &str, v: u64) -> &mut Self {
        self.set(name, Values::Int64(vec![v]))
    }
    pub fn set_data(&mut self, name: &str, v: &[u8]) -> &mut Self {
        self.set(name, Values::Data(vec![v.to_vec()]))
    }
    pub fn set_str(&mut self, name: &str, v: &str) -> &mut Self {
        self.set(name, Values::Str(vec![v.as_bytes().to_vec()]))
    }
    pub fn set_unistr(&mut self, name: &str, v: &str) -> &mut Self {
        self.set(name, Values::UniStr(vec![v.to_owned()]))
    }

    fn typed(&self, name: &str, expected: ValueType) -> Result<&Values, PackError> {
        let v = self.get(name).ok_or_else(|| PackError::Missing {
            field: name.to_owned(),
        })?;
        if v.value_type() != expected {
            return Err(PackError::WrongType {
                field: name.to_owned(),
                expected,
                found: v.value_type(),
            });
        }
        Ok(v)
    }

    /// All INT values of `name` (an INT array).
    pub fn ints(&self, name: &str) -> Result<&[u32], PackError> {
        match self.typed(name, ValueType::Int)? {
            Values::Int(v) => Ok(v),
            _ => Err(missing(name)),
        }
    }
    pub fn int64s(&self, name: &str) -> Result<&[u64], PackError> {
        match self.typed(name, ValueType::Int64)? {
            Values::Int64(v) => Ok(v),
            _ => Err(missing(name)),
        }
    }
    pub fn datas(&self, name: &str) -> Result<&[Vec<u8>], PackError> {
        match self.typed(name, ValueType::Data)? {
            Values::Data(v) => Ok(v),
            _ => Err(missing(name)),
        }
    }
    pub fn strs(&self, name: &str) -> Result<&[Vec<u8>], PackError> {
        match self.typed(name, ValueType::Str)? {
            Values::Str(v) => Ok(v),
            _ => Err(missing(name)),
        }
    }
    pub fn unistrs(&self, name: &str) -> Result<&[String], PackError> {
        match self.typed(name, ValueType::UniStr)? {
            Values::UniStr(v) => Ok(v),
            _ => Err(missing(name)),
        }
    }

    /// First INT value of `name` (`PackGetInt`), strictly typed.
    pub fn int(&self, name: &str) -> Result<u32, PackError> {
        first(self.ints(name)?, name).copied()
    }
    pub fn int64(&self, name: &str) -> Result<u64, PackError> {
        first(self.int64s(name)?, name).copied()
    }
    pub fn data(&self, name: &str) -> Result<&[u8], PackError> {
        first(self.datas(name)?, name).map(Vec::as_slice)
    }
    /// A DATA field that must be exactly `N` bytes (e.g. `random`, `session_key`).
    pub fn data_array<const N: usize>(&self, name: &str) -> Result<[u8; N], PackError> {
        let d = self.data(name)?;
        <[u8; N]>::try_from(d).map_err(|_| PackError::WrongLength {
            field: name.to_owned(),
            expected: N,
            found: d.len(),
        })
    }
    /// First STR value as raw bytes.
    pub fn str_bytes(&self, name: &str) -> Result<&[u8], PackError> {
        first(self.strs(name)?, name).map(Vec::as_slice)
    }
    /// First STR value, which must be UTF-8.
    pub fn str(&self, name: &str) -> Result<&str, PackError> {
        std::str::from_utf8(self.str_bytes(name)?).map_err(|_| PackError::NotUtf8 {
            element: name.to_owned(),
        })
    }
    pub fn unistr(&self, name: &str) -> Result<&str, PackError> {
        first(self.unistrs(name)?, name).map(String::as_str)
    }

    /// `PackGetInt` semantics: missing or mistyped reads as 0.
    pub fn int_or_zero(&self, name: &str) -> u32 {
        self.int(name).unwrap_or(0)
    }
    /// `PackGetBool`: non-zero INT is true; missing or mistyped is false.
    pub fn bool_or_false(&self, name: &str) -> bool {
        self.int_or_zero(name) != 0
    }
}

fn missing(name: &str) -> PackError {
    PackError::Missing {
        field: name.to_owned(),
    }
}

fn first<'a, T>(v: &'a [T], name: &str) -> Result<&'a T, PackError> {
    v.first().ok_or_else(|| missing(name))
}
