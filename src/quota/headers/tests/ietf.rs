//! Section 2, drafts -08..-11: named policies and items, several at once.

use super::support::{case, check, ms, secs, want, Expect};
use crate::quota::observation::Source::{Ietf, XRateLimit};

const POLICIES: &str = r#""burst";q=100;w=60,"daily";q=1000;w=86400"#;
#[test]
fn drafts_08_to_11_named_items() {
    check(vec![
        case(
            "-11 as in the draft (item \"default\" names no listed policy)",
            200,
            &[
                ("RateLimit-Policy", POLICIES),
                ("RateLimit", r#""default";r=50;t=30"#),
            ],
            Some(want(Ietf).remaining(50).reset(secs(30))),
        ),
        case(
            "one policy",
            200,
            &[
                ("RateLimit-Policy", r#""default";q=100;w=60"#),
                ("RateLimit", r#""default";r=50;t=30"#),
            ],
            Some(
                want(Ietf)
                    .limit(100)
                    .remaining(50)
                    .reset(secs(30))
                    .window(secs(60)),
            ),
        ),
        case(
            "burst governs: lowest remaining",
            200,
            &[
                ("RateLimit-Policy", POLICIES),
                ("RateLimit", r#""burst";r=50;t=30, "daily";r=900;t=3600"#),
            ],
            Some(
                want(Ietf)
                    .limit(100)
                    .remaining(50)
                    .reset(secs(30))
                    .window(secs(60)),
            ),
        ),
        case(
            "daily governs: lowest remaining",
            200,
            &[
                ("RateLimit-Policy", POLICIES),
                ("RateLimit", r#""burst";r=90;t=30, "daily";r=20;t=3600"#),
            ],
            Some(
                want(Ietf)
                    .limit(1000)
                    .remaining(20)
                    .reset(secs(3600))
                    .window(secs(86_400)),
            ),
        ),
        case(
            "tie on remaining: the one that blocks longest",
            429,
            &[
                ("RateLimit-Policy", POLICIES),
                ("RateLimit", r#""burst";r=0;t=30, "daily";r=0;t=3600"#),
            ],
            Some(
                want(Ietf)
                    .limit(1000)
                    .remaining(0)
                    .reset(secs(3600))
                    .window(secs(86_400))
                    .limited(),
            ),
        ),
        case(
            "fields repeated over several lines",
            200,
            &[
                ("RateLimit-Policy", r#""burst";q=100;w=60"#),
                ("RateLimit-Policy", r#""daily";q=1000;w=86400"#),
                ("RateLimit", r#""burst";r=80;t=30"#),
                ("RateLimit", r#""daily";r=10;t=600"#),
            ],
            Some(
                want(Ietf)
                    .limit(1000)
                    .remaining(10)
                    .reset(secs(600))
                    .window(secs(86_400)),
            ),
        ),
        case(
            "policies without state: lowest sustained rate",
            200,
            &[("RateLimit-Policy", POLICIES)],
            Some(want(Ietf).limit(1000).window(secs(86_400))),
        ),
        case(
            "a policy without a state line loses to a known remaining",
            200,
            &[
                ("RateLimit-Policy", POLICIES),
                ("RateLimit", r#""burst";r=99;t=1"#),
            ],
            Some(
                want(Ietf)
                    .limit(100)
                    .remaining(99)
                    .reset(secs(1))
                    .window(secs(60)),
            ),
        ),
        case(
            "qu content-bytes and concurrent-requests never govern",
            200,
            &[
                (
                    "RateLimit-Policy",
                    r#""bytes";q=10000;qu="content-bytes";w=60, "conc";q=5;qu="concurrent-requests", "req";q=100;qu="requests";w=60"#,
                ),
                (
                    "RateLimit",
                    r#""bytes";r=1;t=10, "conc";r=0, "req";r=50;t=10"#,
                ),
            ],
            Some(
                want(Ietf)
                    .limit(100)
                    .remaining(50)
                    .reset(secs(10))
                    .window(secs(60)),
            ),
        ),
        case(
            "pk and unknown parameters ignored",
            200,
            &[
                (
                    "RateLimit-Policy",
                    r#""default";q=100;w=60;pk=:YWJj:;foo=bar"#,
                ),
                ("RateLimit", r#""default";r=50;t=30;pk=:YWJj:;x="y""#),
            ],
            Some(
                want(Ietf)
                    .limit(100)
                    .remaining(50)
                    .reset(secs(30))
                    .window(secs(60)),
            ),
        ),
        case(
            "token names: -08 by its keys although it parses as a Dictionary",
            200,
            &[
                ("RateLimit-Policy", "burst;q=100;w=60"),
                ("RateLimit", "burst;r=50;t=30"),
            ],
            Some(
                want(Ietf)
                    .limit(100)
                    .remaining(50)
                    .reset(secs(30))
                    .window(secs(60)),
            ),
        ),
        case(
            "decimal t",
            200,
            &[("RateLimit", r#""default";r=5;t=2.5"#)],
            Some(want(Ietf).remaining(5).reset(ms(2500))),
        ),
        case(
            "Cloudflare spelling Ratelimit / Ratelimit-Policy",
            200,
            &[
                ("Ratelimit-Policy", r#""default";q=1200;w=300"#),
                ("Ratelimit", r#""default";r=1199;t=299"#),
            ],
            Some(
                want(Ietf)
                    .limit(1200)
                    .remaining(1199)
                    .reset(secs(299))
                    .window(secs(300)),
            ),
        ),
        case(
            "Jira Beta-RateLimit / Beta-RateLimit-Policy",
            200,
            &[
                (
                    "Beta-RateLimit-Policy",
                    r#""global-app-quota";q=65000;w=3600"#,
                ),
                ("Beta-RateLimit", r#""global-app-quota";r=64999;t=3599"#),
            ],
            Some(
                want(Ietf)
                    .limit(65_000)
                    .remaining(64_999)
                    .reset(secs(3599))
                    .window(secs(3600)),
            ),
        ),
        case(
            "an item without r is ignored, the others count",
            200,
            &[("RateLimit", r#""a";t=5, "b";r=7;t=9"#)],
            Some(want(Ietf).remaining(7).reset(secs(9))),
        )
        .warns(&[("ratelimit", "missing required parameter")]),
        case(
            "a policy without q is ignored",
            200,
            &[
                ("RateLimit-Policy", r#""a";w=60"#),
                ("RateLimit", r#""a";r=7"#),
            ],
            Some(want(Ietf).remaining(7)),
        )
        .warns(&[("ratelimit-policy", "missing required parameter")]),
        case(
            "negative r ignored",
            200,
            &[("RateLimit", r#""a";r=-7;t=1"#)],
            None,
        )
        .warns(&[("ratelimit", "negative")]),
        case(
            "huge t ignored, r kept",
            200,
            &[("RateLimit", r#""a";r=7;t=999999"#)],
            Some(want(Ietf).remaining(7)),
        )
        .warns(&[("ratelimit", "longer than max_wait")]),
        case(
            "huge w ignored",
            200,
            &[
                ("RateLimit-Policy", r#""a";q=9;w=2592000"#),
                ("RateLimit", r#""a";r=7"#),
            ],
            Some(want(Ietf).limit(9).remaining(7)),
        )
        .warns(&[("ratelimit-policy", "longer than max_wait")]),
        case(
            "one bad line fails the whole field",
            200,
            &[("RateLimit", r#""a";r=7"#), ("RateLimit", r#""b;r=1"#)],
            None,
        )
        .warns(&[("ratelimit", "malformed")]),
        case(
            "malformed IETF falls through to X-RateLimit",
            200,
            &[
                ("RateLimit", "limit=="),
                ("X-RateLimit-Limit", "60"),
                ("X-RateLimit-Remaining", "59"),
            ],
            Some(want(XRateLimit).limit(60).remaining(59)),
        )
        .warns(&[("ratelimit", "malformed")]),
        case("empty field", 200, &[("RateLimit", "")], None).warns(&[("ratelimit", "empty")]),
        case(
            "IETF wins over X-RateLimit sent beside it",
            200,
            &[
                ("RateLimit", r#""d";r=1;t=2"#),
                ("X-RateLimit-Remaining", "59"),
            ],
            Some(want(Ietf).remaining(1).reset(secs(2))),
        ),
    ]);
}
