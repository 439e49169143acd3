CREATE TABLE products (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL,
    stock          INTEGER NOT NULL,
    sold           INTEGER NOT NULL DEFAULT 0,
    per_user_limit INTEGER NOT NULL DEFAULT 0,
    fence          INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);

CREATE TABLE stock_buckets (
    product_id INTEGER NOT NULL REFERENCES products (id),
    bucket     INTEGER NOT NULL,
    stock      INTEGER NOT NULL,
    sold       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (product_id, bucket)
);

CREATE TABLE user_purchases (
    product_id INTEGER NOT NULL REFERENCES products (id),
    user_id    TEXT    NOT NULL,
    quantity   INTEGER NOT NULL,
    PRIMARY KEY (product_id, user_id)
);

CREATE TABLE orders (
    id              TEXT    PRIMARY KEY,
    product_id      INTEGER NOT NULL REFERENCES products (id),
    user_id         TEXT    NOT NULL,
    quantity        INTEGER NOT NULL,
    idempotency_key TEXT    UNIQUE,
    request_hash    TEXT,
    created_at      INTEGER NOT NULL
);

CREATE INDEX orders_by_product ON orders (product_id, created_at);
