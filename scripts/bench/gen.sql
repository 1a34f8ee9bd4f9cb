-- Lethe benchmark data: an application-shaped schema with text that
-- compresses like real data (zstd -3 ratio ~3-5x on COPY text, not pgbench's 50x).
--
-- Usage (into an existing, empty database):
--   createdb -h 127.0.0.1 -U postgres lethe_bench
--   psql -h 127.0.0.1 -U postgres -d lethe_bench -v scale=1 -f scripts/bench/gen.sql
-- scale=1 is ~1 GB of table data (heap, without indexes), scale=10 ~10 GB,
-- scale=0.1 ~100 MB. Ids are dense 1..N per table, so an erasure list of ids
-- with a known hit rate is easy to build (see scripts/bench/ids.sh).
--
-- Foreign keys to users cover every ON DELETE action the restore filter must
-- reproduce: sessions/orders/events CASCADE, comments SET NULL, payments
-- RESTRICT, users.invited_by SET NULL (self-reference); order_items CASCADE
-- from orders (a two-level chain).
\set ON_ERROR_STOP on
\if :{?scale}
\else
  \set scale 1
\endif
\timing on
set client_min_messages = warning;
set synchronous_commit = off;
set maintenance_work_mem = '256MB';
select setseed(0.4242);

drop table if exists payments, comments, events, order_items, orders, sessions, users cascade;

-- Vocabulary with a Zipf-like pick (power of random()), so frequent words
-- repeat the way they do in real prose.
create or replace function pg_temp.words() returns text[] language sql immutable as $w$
select string_to_array(
'the of and to a in is it you that he was for on are with as I his they be at one have this from or had by not word but what some we can out other were all there when up use your how said an each she which do their time if will way about many then them write would like so these her long make thing see him two has look more day could go come did number sound no most people my over know water than call first who may down side been now find any new work part take get place made live where after back little only round man year came show every good me give our under name very through just form sentence great think say help low line differ turn cause much mean before move right boy old too same tell does set three want air well also play small end put home read hand port large spell add even land here must big high such follow act why ask men change went light kind off need house picture try us again animal point mother world near build self earth father head stand own page should country found answer school grow study still learn plant cover food sun four between state keep eye never last let thought city tree cross farm hard start might story saw far sea draw left late run while press close night real life few north open seem together next white children begin got walk example ease paper group always music those both mark often letter until mile river car feet care second book carry took science eat room friend began idea fish mountain stop once base hear horse cut sure watch color face wood main enough plain girl usual young ready above ever red list though feel talk bird soon body dog family direct pose leave song measure door product black short numeral class wind question happen complete ship area half rock order fire south problem piece told knew pass since top whole king space heard best hour better true during hundred five remember step early hold west ground interest reach fast verb sing listen six table travel less morning ten simple several vowel toward war lay against pattern slow center love person money serve appear road map rain rule govern pull cold notice voice unit power town fine certain fly fall lead cry dark machine note wait plan figure star box noun field rest correct able pound done beauty drive stood contain front teach week final gave green oh quick develop ocean warm free minute strong special mind behind clear tail produce fact street inch multiply nothing course stay wheel full force blue object decide surface deep moon island foot system busy test record boat common gold possible plane stead dry wonder laugh thousand ago ran check game shape equate hot miss brought heat snow tire bring yes distant fill east paint language among delivery refund invoice account password login shipping order package arrived damaged support ticket customer thanks please update subscription cancel billing address payment card declined discount coupon cart checkout review rating stars quality price cheap expensive broken replace return warranty email phone message reply urgent issue resolved again tomorrow yesterday today week month available stock size color colour small medium large fits great awesome terrible disappointed happy recommend product seller courier tracking number late fast slow app mobile website error page crash loading button screen settings profile notification privacy data delete export download upload photo image file report'
, ' ') $w$;

create or replace function pg_temp.pick(a text[]) returns text language sql volatile as
$$ select a[1 + floor(power(random(), 2.5) * array_length(a, 1))::int] $$;

create or replace function pg_temp.lorem(n int) returns text language sql volatile as $$
  select string_agg(w[1 + floor(power(random(), 2.5) * 560)::int], ' ')
  from generate_series(1, greatest(n, 1)), (select pg_temp.words() as w) v
$$;

create or replace function pg_temp.firsts() returns text[] language sql immutable as $$ select string_to_array(
'Anna Ben Carla David Emma Felix Greta Hugo Ida Jonas Klara Lukas Mia Noah Olga Paul Rosa Sven Tina Umut Vera Willem Xenia Yusuf Zoe Lea Finn Lina Elias Marie Leon Sophie Luca Hannah Emil Julia Anton Laura Karl Nina Oskar Sara Jan Eva Tim Lisa Max Maja Niklas Amelie Mohammed Fatima Giulia Mateo Lucia Pierre Camille Jakub Zofia Bram Sanne Aoife Liam Ingrid Lars Elena Andrei Petra Tomas', ' ') $$;
create or replace function pg_temp.lasts() returns text[] language sql immutable as $$ select string_to_array(
'Muller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch Richter Klein Wolf Schroder Neumann Schwarz Braun Zimmermann Kruger Hartmann Lange Werner Krause Lehmann Kohler Maier Kaiser Fuchs Peters Jansen DeVries Bakker Visser Smit Rossi Russo Ferrari Esposito Bianchi Romano Garcia Martinez Lopez Sanchez Perez Martin Bernard Dubois Thomas Robert Nowak Kowalski Wisniewski Novak Horvat Murphy Kelly Oconnor Andersson Johansson Nielsen Hansen Korhonen Popescu Ionescu Papadopoulos Silva Santos', ' ') $$;
create or replace function pg_temp.cities() returns text[] language sql immutable as $$ select string_to_array(
'Berlin Hamburg Munich Cologne Frankfurt Stuttgart Leipzig Dresden Vienna Graz Zurich Basel Paris Lyon Marseille Lille Madrid Barcelona Valencia Seville Lisbon Porto Rome Milan Naples Turin Amsterdam Rotterdam Utrecht Brussels Antwerp Warsaw Krakow Prague Brno Budapest Bucharest Sofia Athens Dublin Cork Copenhagen Aarhus Stockholm Gothenburg Helsinki Tallinn Riga Vilnius Ljubljana Zagreb', ' ') $$;

create table users (
  id bigint generated by default as identity primary key,
  uuid uuid not null,
  email text not null,
  name text not null,
  country char(2) not null,
  locale text not null,
  marketing_opt_in boolean not null,
  created_at timestamptz not null,
  last_login_at timestamptz,
  invited_by bigint,
  bio text
);
create table sessions (
  id bigint generated by default as identity primary key,
  user_id bigint not null,
  token text not null,
  ip inet,
  user_agent text not null,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  revoked_at timestamptz
);
create table orders (
  id bigint generated by default as identity primary key,
  user_id bigint not null,
  status text not null,
  currency char(3) not null,
  total_cents bigint not null,
  created_at timestamptz not null,
  shipped_at timestamptz,
  shipping_address text not null,
  note text
);
create table order_items (
  id bigint generated by default as identity primary key,
  order_id bigint not null,
  sku text not null,
  product_name text not null,
  quantity int not null,
  unit_price_cents bigint not null
);
create table events (
  id bigint generated by default as identity primary key,
  user_id bigint,
  kind text not null,
  payload jsonb not null,
  created_at timestamptz not null
);
create table comments (
  id bigint generated by default as identity primary key,
  user_id bigint,
  order_id bigint,
  body text not null,
  created_at timestamptz not null,
  edited_at timestamptz
);
create table payments (
  id bigint generated by default as identity primary key,
  user_id bigint not null,
  order_id bigint,
  amount_cents bigint not null,
  method text not null,
  provider_ref text not null,
  status text not null,
  created_at timestamptz not null
);

-- Row counts per scale unit (scale=1 ~ 1 GB of heap).
create temp table n as select
  (500000 * :scale)::bigint as users,
  (1000000 * :scale)::bigint as sessions,
  (830000 * :scale)::bigint as orders,
  (2150000 * :scale)::bigint as order_items,
  (1080000 * :scale)::bigint as events,
  (330000 * :scale)::bigint as comments,
  (750000 * :scale)::bigint as payments;

-- Time grows with the id, as in a real table; users pick skewed (power law).
insert into users
select i,
  gen_random_uuid(),
  lower(f) || '.' || lower(l) || (i % 1000) || '@' || pg_temp.pick('{gmail.com,web.de,gmx.de,outlook.com,yahoo.fr,orange.fr,libero.it,proton.me,icloud.com,posteo.de,example.org}'),
  f || ' ' || l,
  pg_temp.pick('{DE,FR,IT,ES,NL,PL,AT,BE,SE,IE,PT,CZ,DK,FI}'),
  pg_temp.pick('{de-DE,en-GB,fr-FR,it-IT,es-ES,nl-NL,pl-PL,en-US}'),
  random() < 0.3,
  ts,
  case when random() < 0.8 then ts + random() * interval '300 days' end,
  case when i > 10 and random() < 0.3 then 1 + floor(random() * (i - 1))::bigint end,
  case when random() < 0.45 then pg_temp.lorem(5 + (random() * 25)::int) end
from n, generate_series(1, n.users) i,
  lateral (select pg_temp.pick(pg_temp.firsts()) f, pg_temp.pick(pg_temp.lasts()) l,
           timestamptz '2021-01-01' + (i::float8 / n.users) * interval '1400 days' + random() * interval '6 hours' ts) x;

insert into sessions
select i,
  1 + floor(power(random(), 1.7) * n.users)::bigint,
  md5(i::text || random()::text),
  case when random() < 0.95 then ('10.' || (random()*255)::int || '.' || (random()*255)::int || '.' || (random()*255)::int)::inet end,
  pg_temp.pick('{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36","Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15","Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148","Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0","Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36","okhttp/4.12.0","AcmeShop-iOS/5.12.1 (build 2204)","AcmeShop-Android/5.12.0"}'),
  ts, ts + interval '30 days',
  case when random() < 0.1 then ts + random() * interval '30 days' end
from n, generate_series(1, n.sessions) i,
  lateral (select timestamptz '2021-01-01' + (i::float8 / n.sessions) * interval '1400 days' + random() * interval '6 hours' ts) x;

insert into orders
select i,
  1 + floor(power(random(), 1.7) * n.users)::bigint,
  st,
  pg_temp.pick('{EUR,EUR,EUR,PLN,SEK,DKK,CZK,CHF}'),
  (500 + power(random(), 3) * 50000)::bigint,
  ts,
  case when st in ('shipped', 'delivered', 'returned') then ts + random() * interval '5 days' end,
  (1 + (random() * 200)::int) || ' ' || initcap(pg_temp.lorem(1)) || initcap(pg_temp.pick('{strasse,weg,allee,street,road,laan,rue}'))
    || E'\n' || lpad(((random() * 99999)::int)::text, 5, '0') || ' ' || pg_temp.pick(pg_temp.cities()),
  case when random() < 0.15 then pg_temp.lorem(3 + (random() * 15)::int) end
from n, generate_series(1, n.orders) i,
  lateral (select timestamptz '2021-01-01' + (i::float8 / n.orders) * interval '1400 days' + random() * interval '6 hours' ts,
                  pg_temp.pick('{delivered,delivered,shipped,paid,pending,cancelled,returned}') st) x;

insert into order_items
select i,
  1 + floor(random() * n.orders)::bigint,
  'SKU-' || upper(substr(md5((p % 5000)::text), 1, 6)) || '-' || (p % 5000),
  initcap(pg_temp.lorem(2 + (p % 3))),
  1 + floor(power(random(), 4) * 10)::int,
  (199 + (p * 7919) % 20000)::bigint
from n, generate_series(1, n.order_items) i,
  lateral (select floor(power(random(), 2) * 5000)::int + (i % 1)::int p) x;

insert into events
select i,
  case when random() < 0.9 then 1 + floor(power(random(), 1.7) * n.users)::bigint end,
  k,
  jsonb_build_object(
    'path', '/' || pg_temp.pick('{shop,product,cart,checkout,account,search,help}') || '/' || (random() * 5000)::int,
    'referrer', case when random() < 0.5 then 'https://' || pg_temp.pick('{google.com,bing.com,duckduckgo.com,instagram.com,newsletter.acme.eu}') || '/' end,
    'session', (random() * 1000000000)::bigint,
    'duration_ms', (power(random(), 3) * 30000)::int,
    'device', pg_temp.pick('{desktop,mobile,tablet}'),
    'query', case when k = 'search' then pg_temp.lorem(1 + (random() * 3)::int) end,
    'items', case when k in ('add_to_cart', 'purchase') then
       jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (random() * 5000)::int, 'qty', 1 + (random() * 3)::int)) end),
  timestamptz '2021-01-01' + (i::float8 / n.events) * interval '1400 days' + random() * interval '6 hours'
from n, generate_series(1, n.events) i,
  -- (the i > 0 test makes the lateral depend on i: evaluated per row)
  lateral (select case when i > 0 then pg_temp.pick('{page_view,page_view,page_view,search,add_to_cart,login,purchase,logout,error}') end k) x;

insert into comments
select i,
  case when random() < 0.97 then 1 + floor(power(random(), 1.7) * n.users)::bigint end,
  case when random() < 0.6 then 1 + floor(random() * n.orders)::bigint end,
  pg_temp.lorem(8 + (power(random(), 2) * 120)::int),
  ts,
  case when random() < 0.1 then ts + random() * interval '2 days' end
from n, generate_series(1, n.comments) i,
  lateral (select timestamptz '2021-01-01' + (i::float8 / n.comments) * interval '1400 days' + random() * interval '6 hours' ts) x;

insert into payments
select i,
  o.user_id,
  o.id,
  o.total_cents,
  pg_temp.pick('{card,card,sepa_debit,paypal,klarna,ideal,blik}'),
  'pi_' || substr(md5(i::text), 1, 24),
  pg_temp.pick('{succeeded,succeeded,succeeded,refunded,failed}'),
  o.created_at + random() * interval '1 hour'
from n, generate_series(1, n.payments) i
  join orders o on o.id = i;

-- Constraints and indexes after the data, as a restore would.
alter table users add constraint users_uuid_key unique (uuid);
alter table users add constraint users_invited_by_fkey foreign key (invited_by) references users (id) on delete set null;
alter table sessions add constraint sessions_user_id_fkey foreign key (user_id) references users (id) on delete cascade;
alter table orders add constraint orders_user_id_fkey foreign key (user_id) references users (id) on delete cascade;
alter table order_items add constraint order_items_order_id_fkey foreign key (order_id) references orders (id) on delete cascade;
alter table events add constraint events_user_id_fkey foreign key (user_id) references users (id) on delete cascade;
alter table comments add constraint comments_user_id_fkey foreign key (user_id) references users (id) on delete set null;
alter table comments add constraint comments_order_id_fkey foreign key (order_id) references orders (id) on delete set null;
alter table payments add constraint payments_user_id_fkey foreign key (user_id) references users (id) on delete restrict;
alter table payments add constraint payments_order_id_fkey foreign key (order_id) references orders (id) on delete set null;
create index sessions_user_id_idx on sessions (user_id);
create index orders_user_id_idx on orders (user_id);
create index order_items_order_id_idx on order_items (order_id);
create index events_user_id_idx on events (user_id);
create index comments_user_id_idx on comments (user_id);
create index payments_user_id_idx on payments (user_id);

select setval(pg_get_serial_sequence('users', 'id'), max(id)) from users;
select setval(pg_get_serial_sequence('sessions', 'id'), max(id)) from sessions;
select setval(pg_get_serial_sequence('orders', 'id'), max(id)) from orders;
select setval(pg_get_serial_sequence('order_items', 'id'), max(id)) from order_items;
select setval(pg_get_serial_sequence('events', 'id'), max(id)) from events;
select setval(pg_get_serial_sequence('comments', 'id'), max(id)) from comments;
select setval(pg_get_serial_sequence('payments', 'id'), max(id)) from payments;

vacuum (freeze, analyze) users, sessions, orders, order_items, events, comments, payments;

select relname, n_live_tup as rows,
  pg_size_pretty(pg_table_size(relid)) as heap,
  pg_size_pretty(pg_indexes_size(relid)) as indexes
from pg_stat_user_tables where schemaname = 'public' order by relname;
select pg_size_pretty(sum(pg_table_size(relid))) as table_data,
       pg_size_pretty(sum(pg_total_relation_size(relid))) as with_indexes
from pg_stat_user_tables where schemaname = 'public';
