-- :users seeded users, user N has id 00000000-0000-4000-8000-<N in hex, 12 digits>, email
-- userN@example.com and password "password" (the hash below), and one free subscription.
INSERT INTO users (id, email, password, name)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid,
       'user' || n || '@example.com',
       :'password_hash',
       'User ' || n
FROM generate_series(1, :users) AS n;

INSERT INTO subscriptions (user_id, plan, status, current_period_start, current_period_end, features)
SELECT id, 'free', 'active', now(), now() + interval '30 days', '{"projects": 3}'::jsonb
FROM users;
