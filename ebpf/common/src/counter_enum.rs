//! `counter_enum!`: one definition per counter enum — each variant's
//! index and its metric name side by side — from which the enum, `COUNT`,
//! `ALL` and `name()` are generated. A counter is then added, renamed or
//! removed in one line; the maps, status and metrics follow.

/// Declares a dense `#[repr(u32)]` enum whose variants index a per-CPU
/// counter map, with `COUNT`, `ALL` (in index order) and `name()`. Fails to
/// compile when the indices are not 0, 1, 2… in order.
#[macro_export]
macro_rules! counter_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $index:literal => $label:literal,
            )+
        }
    ) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $(
                $(#[$vmeta])*
                $variant = $index,
            )+
        }

        impl $name {
            /// How many variants (and map slots) there are.
            pub const COUNT: u32 = [$(stringify!($variant)),+].len() as u32;

            /// Every variant, in index order.
            pub const ALL: [$name; Self::COUNT as usize] = [$(Self::$variant),+];

            /// Stable, metric-friendly name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)+
                }
            }
        }

        const _: () = {
            let mut i = 0;
            while i < $name::ALL.len() {
                assert!($name::ALL[i] as usize == i, "counter indices must be 0, 1, 2… in order");
                i += 1;
            }
        };
    };
}
