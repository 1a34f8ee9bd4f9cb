//! Partitions (monthly, a partitioned root, keys between partitioned
//! tables) and inheritance.

use super::*;

#[test]
fn monthly_partitioned_orders_and_items_lose_an_erased_users_rows_in_every_partition() {
    let case = Case {
        tag: "s_months",
        source_sql: r#"
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE orders (id bigint NOT NULL, created_at date NOT NULL,
  user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE, total numeric(10,2),
  PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
CREATE TABLE orders_2024_01 PARTITION OF orders FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE orders_2024_02 PARTITION OF orders FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE orders_2024_03 PARTITION OF orders FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
CREATE TABLE orders_default PARTITION OF orders DEFAULT;
CREATE TABLE order_items (order_id bigint NOT NULL, order_created_at date NOT NULL, line int NOT NULL, sku text,
  PRIMARY KEY (order_id, order_created_at, line),
  FOREIGN KEY (order_id, order_created_at) REFERENCES orders (id, created_at) ON DELETE CASCADE)
  PARTITION BY RANGE (order_created_at);
CREATE TABLE order_items_2024_01 PARTITION OF order_items FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE order_items_2024_02 PARTITION OF order_items FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE order_items_2024_03 PARTITION OF order_items FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
CREATE TABLE order_items_default PARTITION OF order_items DEFAULT;
CREATE TABLE refunds (id bigint PRIMARY KEY, order_id bigint NOT NULL, order_created_at date NOT NULL,
  line int NOT NULL, amount numeric(10,2),
  FOREIGN KEY (order_id, order_created_at, line) REFERENCES order_items ON DELETE RESTRICT);
CREATE MATERIALIZED VIEW order_counts AS SELECT user_id, count(*) AS n FROM orders GROUP BY user_id;

INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 40) i;
INSERT INTO users VALUES (990001, 'erased one'), (990002, 'erased two'), (990003, 'erased three');
-- Four orders per user, one per month: January to March and April (default).
INSERT INTO orders SELECT row_number() OVER (ORDER BY u.id, k), date '2024-01-10' + k * 31 + (u.id % 7)::int,
  u.id, (u.id % 50) + k + 0.25
  FROM users u, generate_series(0, 3) k;
INSERT INTO order_items SELECT o.id, o.created_at, l, 'SKU-' || (o.id * l % 97)
  FROM orders o, generate_series(1, 1 + (o.id % 2)::int) l;
INSERT INTO refunds SELECT row_number() OVER (ORDER BY order_id), order_id, order_created_at, line, 1.50
  FROM order_items WHERE line = 1 AND order_id % 2 = 0;
REFRESH MATERIALIZED VIEW order_counts;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001", "990002", "990003"]),
    };
    let c = case.check();
    // The erased users' rows were in every partition, and in refunds.
    assert_eq!(
        scalar(
            &c.env.src,
            "SELECT count(DISTINCT i.tableoid) FROM order_items i JOIN orders o \
             ON o.id = i.order_id WHERE o.user_id = 990001"
        ),
        "4"
    );
    assert_ne!(
        scalar(
            &c.env.src,
            "SELECT count(*) FROM refunds r JOIN orders o ON o.id = r.order_id WHERE o.user_id = 990002"
        ),
        "0"
    );
    for t in [
        "orders_2024_01",
        "orders_2024_02",
        "orders_2024_03",
        "orders_default",
        "order_items_2024_01",
        "order_items_default",
        "refunds",
    ] {
        assert!(
            table_report(&c.report, &format!("public.{t}"))["rows_dropped"]
                .as_u64()
                .unwrap()
                > 0,
            "{t} dropped nothing: {}",
            c.report
        );
    }
}

#[test]
fn a_root_naming_a_partitioned_table_covers_partitions_added_after_the_config_was_written() {
    let case = Case {
        tag: "s_proot",
        source_sql: r#"
CREATE TABLE users (id bigint NOT NULL, region text NOT NULL, name text, PRIMARY KEY (id, region))
  PARTITION BY LIST (region);
CREATE TABLE users_eu PARTITION OF users FOR VALUES IN ('eu');
CREATE TABLE users_us PARTITION OF users FOR VALUES IN ('us');
CREATE TABLE users_apac PARTITION OF users FOR VALUES IN ('apac', 'oc') PARTITION BY HASH (id);
CREATE TABLE users_apac_0 PARTITION OF users_apac FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE users_apac_1 PARTITION OF users_apac FOR VALUES WITH (MODULUS 2, REMAINDER 1);
-- Attached rather than created as a partition.
CREATE TABLE users_latam (id bigint NOT NULL, region text NOT NULL, name text);
ALTER TABLE users ATTACH PARTITION users_latam FOR VALUES IN ('latam');
CREATE TABLE sessions (id bigint PRIMARY KEY, user_id bigint NOT NULL, region text NOT NULL, started date,
  FOREIGN KEY (user_id, region) REFERENCES users (id, region) ON DELETE CASCADE);
CREATE TABLE audit (id bigint PRIMARY KEY, user_id bigint, region text, what text,
  FOREIGN KEY (user_id, region) REFERENCES users (id, region));

INSERT INTO users SELECT i, (ARRAY['eu', 'us', 'apac', 'oc', 'latam'])[1 + i % 5], 'user ' || i
  FROM generate_series(1, 60) i;
-- Every erased id in every region (the key is (id, region)).
INSERT INTO users SELECT i, r, 'erased ' || i
  FROM generate_series(990001, 990004) i, unnest(ARRAY['eu', 'us', 'apac', 'oc', 'latam']) r;
INSERT INTO sessions SELECT row_number() OVER (ORDER BY u.id, u.region, g), u.id, u.region, date '2024-05-01' + g
  FROM users u, generate_series(1, 3) g;
INSERT INTO audit SELECT row_number() OVER (ORDER BY u.id, u.region), u.id, u.region, 'login'
  FROM users u WHERE u.id % 2 = 1;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001", "990002", "990003", "990004"]),
    };
    let c = case.check();
    assert_eq!(
        scalar(
            &c.env.src,
            "SELECT count(DISTINCT tableoid) FROM users WHERE id >= 990001"
        ),
        "5",
        "the erased users are not in every leaf partition"
    );
    for (what, db) in [("--target", &c.target), ("--to-file", &c.from_file)] {
        for t in [
            "users_eu",
            "users_us",
            "users_apac_0",
            "users_apac_1",
            "users_latam",
        ] {
            let sql = format!("SELECT count(*) FROM {t} WHERE id >= 990001");
            assert_eq!(scalar(db, &sql), "0", "{what}: {t}");
        }
    }
}

#[test]
fn an_inheritance_child_of_the_root_loses_its_erased_rows() {
    let case = Case {
        tag: "s_inherit",
        source_sql: r#"
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE admins (level int NOT NULL DEFAULT 1) INHERITS (users);
ALTER TABLE admins ADD PRIMARY KEY (id);
CREATE TABLE posts (id bigint PRIMARY KEY, author_id bigint REFERENCES users (id) ON DELETE CASCADE, body text);
CREATE TABLE admin_notes (id bigint PRIMARY KEY,
  admin_id bigint NOT NULL REFERENCES admins (id) ON DELETE CASCADE, note text);

INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 50) i;
INSERT INTO users VALUES (990001, 'erased user'), (990002, 'erased user two'), (990003, 'erased, also an admin');
INSERT INTO admins SELECT i, 'admin ' || i, i % 3 FROM generate_series(101, 110) i;
INSERT INTO admins VALUES (990011, 'erased admin', 2), (990012, 'erased admin two', 3), (990003, 'erased admin three', 1);
INSERT INTO posts SELECT row_number() OVER (ORDER BY u.id, g), u.id, 'post ' || g FROM ONLY users u, generate_series(1, 3) g;
INSERT INTO posts VALUES (1000, NULL, 'anonymous');
INSERT INTO admin_notes SELECT row_number() OVER (ORDER BY a.id, g), a.id, 'note ' || g FROM admins a, generate_series(1, 2) g;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001", "990002", "990003", "990011", "990012"]),
    };
    let c = case.check();
    // In PostgreSQL a DELETE on the parent reaches its inheritance children:
    // the truth lost the erased admins too.
    assert_eq!(scalar(&c.truth, "SELECT count(*) FROM admins"), "10");
    assert_eq!(
        scalar(&c.target, "SELECT count(*) FROM admins WHERE id >= 990001"),
        "0"
    );
    assert_eq!(scalar(&c.target, "SELECT count(*) FROM admins"), "10");
}
