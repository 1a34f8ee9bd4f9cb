-- The fixed write workload of the storage benchmark on the gen.sql database
-- (scripts/bench/continuous.sh DATA=gen): per transaction an order of an
-- existing user with two items and an event, the user's login time, one
-- session revoked. pgbench -f scripts/bench/app-write.sql -D scale=1.
\set uid random(1, 500000 * :scale)
\set sid random(1, 1000000 * :scale)
\set n random(1, 5000)
BEGIN;
INSERT INTO orders (user_id, status, currency, total_cents, created_at, shipping_address, note)
  VALUES (:uid, 'pending', 'EUR', 500 + :n * 7, now(),
          (:n % 200) || ' Hauptstrasse' || E'\n' || lpad((:n * 13 % 99999)::text, 5, '0') || ' Berlin',
          CASE WHEN :n % 7 = 0 THEN 'please leave the parcel at the door' END)
  RETURNING id AS oid \gset
INSERT INTO order_items (order_id, sku, product_name, quantity, unit_price_cents)
  VALUES (:oid, 'SKU-' || upper(substr(md5((:n % 5000)::text), 1, 6)) || '-' || :n, 'Great product ' || (:n % 300), 1, 199 + :n),
         (:oid, 'SKU-' || upper(substr(md5(((:n * 7) % 5000)::text), 1, 6)) || '-' || (:n * 7 % 5000), 'Small thing ' || (:n % 90), 2, 99 + :n % 500);
INSERT INTO events (user_id, kind, payload, created_at)
  VALUES (:uid, 'order.created',
          jsonb_build_object('order_id', :oid, 'total_cents', 500 + :n * 7, 'items', 2,
                             'ua', 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0'),
          now());
UPDATE users SET last_login_at = now() WHERE id = :uid;
UPDATE sessions SET revoked_at = now() WHERE id = :sid;
END;
