//! Section 2, drafts -00..-07: the separate fields and the -07 Dictionary.

use super::support::{case, check, secs, want, Expect};
use crate::quota::observation::Source::{Ietf06, Ietf07};

#[test]
fn drafts_00_to_06() {
    check(vec![
        case(
            "-00/-01 list limit with a policy",
            200,
            &[
                ("RateLimit-Limit", "100, 100;w=10"),
                ("RateLimit-Remaining", "50"),
                ("RateLimit-Reset", "50"),
            ],
            Some(
                want(Ietf06)
                    .limit(100)
                    .remaining(50)
                    .reset(secs(50))
                    .window(secs(10)),
            ),
        ),
        case(
            "-00/-01 several policies: the one with the current limit",
            200,
            &[
                ("RateLimit-Limit", "50, 10;w=1, 50;w=60"),
                ("RateLimit-Remaining", "7"),
            ],
            Some(want(Ietf06).limit(50).remaining(7).window(secs(60))),
        ),
        case(
            "-02..-06 Structured Field integers",
            200,
            &[
                ("RateLimit-Limit", "100"),
                ("RateLimit-Remaining", "50"),
                ("RateLimit-Reset", "50"),
            ],
            Some(want(Ietf06).limit(100).remaining(50).reset(secs(50))),
        ),
        case(
            "-02..-06 with RateLimit-Policy",
            200,
            &[
                ("RateLimit-Limit", "100"),
                ("RateLimit-Remaining", "50"),
                ("RateLimit-Reset", "50"),
                ("RateLimit-Policy", "100;w=60"),
            ],
            Some(
                want(Ietf06)
                    .limit(100)
                    .remaining(50)
                    .reset(secs(50))
                    .window(secs(60)),
            ),
        ),
        case(
            "-06 policy list: the member with the current quota",
            200,
            &[
                ("RateLimit-Limit", "1000"),
                ("RateLimit-Policy", "100;w=60, 1000;w=3600"),
            ],
            Some(want(Ietf06).limit(1000).window(secs(3600))),
        ),
        case(
            "Zendesk ratelimit-* (delta seconds, per minute)",
            200,
            &[
                ("ratelimit-limit", "700"),
                ("ratelimit-remaining", "699"),
                ("ratelimit-reset", "41"),
            ],
            Some(want(Ietf06).limit(700).remaining(699).reset(secs(41))),
        ),
        case(
            "decimal remaining floored",
            200,
            &[("RateLimit-Remaining", "49.9")],
            Some(want(Ietf06).remaining(49)),
        ),
        case(
            "token remaining ignored",
            200,
            &[("RateLimit-Limit", "100"), ("RateLimit-Remaining", "abc")],
            Some(want(Ietf06).limit(100)),
        )
        .warns(&[("ratelimit-remaining", "malformed")]),
        case(
            "negative remaining ignored",
            200,
            &[("RateLimit-Limit", "100"), ("RateLimit-Remaining", "-1")],
            Some(want(Ietf06).limit(100)),
        )
        .warns(&[("ratelimit-remaining", "negative")]),
        case(
            "huge reset ignored",
            200,
            &[("RateLimit-Remaining", "5"), ("RateLimit-Reset", "86401")],
            Some(want(Ietf06).remaining(5)),
        )
        .warns(&[("ratelimit-reset", "longer than max_wait")]),
        case(
            "malformed limit list",
            200,
            &[("RateLimit-Limit", "100;w="), ("RateLimit-Remaining", "5")],
            Some(want(Ietf06).remaining(5)),
        )
        .warns(&[("ratelimit-limit", "malformed")]),
        case("nothing usable", 200, &[("RateLimit-Limit", "")], None)
            .warns(&[("ratelimit-limit", "empty")]),
    ]);
}

#[test]
fn draft_07_dictionary() {
    check(vec![
        case(
            "-07 as in the draft (no policy has the quota 100: no window)",
            200,
            &[
                ("RateLimit", "limit=100, remaining=50, reset=5"),
                ("RateLimit-Policy", "10;w=1, 50;w=60"),
            ],
            Some(want(Ietf07).limit(100).remaining(50).reset(secs(5))),
        ),
        case(
            "-07 window from the policy with the same quota",
            200,
            &[
                ("RateLimit", "limit=50, remaining=3, reset=20"),
                ("RateLimit-Policy", "10;w=1, 50;w=60"),
            ],
            Some(
                want(Ietf07)
                    .limit(50)
                    .remaining(3)
                    .reset(secs(20))
                    .window(secs(60)),
            ),
        ),
        case(
            "-07 without policy",
            200,
            &[("RateLimit", "limit=10, remaining=0, reset=1")],
            Some(want(Ietf07).limit(10).remaining(0).reset(secs(1))),
        ),
        case(
            "-07 over two lines, unknown key ignored",
            200,
            &[
                ("RateLimit", "limit=10, remaining=4"),
                ("RateLimit", "reset=2, foo=bar"),
            ],
            Some(want(Ietf07).limit(10).remaining(4).reset(secs(2))),
        ),
        case(
            "-07 reset is delta even when large (not the magnitude rule)",
            200,
            &[("RateLimit", "remaining=4, reset=3600")],
            Some(want(Ietf07).remaining(4).reset(secs(3600))),
        ),
        case(
            "-07 negative remaining ignored",
            200,
            &[("RateLimit", "limit=10, remaining=-4, reset=2")],
            Some(want(Ietf07).limit(10).reset(secs(2))),
        )
        .warns(&[("ratelimit", "negative")]),
        case(
            "-07 inner list ignored",
            200,
            &[("RateLimit", "limit=(1 2), remaining=4")],
            Some(want(Ietf07).remaining(4)),
        )
        .warns(&[("ratelimit", "malformed")]),
    ]);
}
