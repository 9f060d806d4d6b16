-- Sample data for local runs and tests. Customer names, phones and emails here must never
-- appear in a log line; the end-to-end tests check that.
INSERT OR REPLACE INTO staff (id, first_name, last_name) VALUES
  (3, 'Robbie', 'Fairweather'),
  (4, 'Dana', 'Okonkwo-Lindqvist');
INSERT OR REPLACE INTO sessions (token, staff_id) VALUES
  ('sess_robbie', 3),
  ('sess_dana', 4);
INSERT OR REPLACE INTO customers (id, name, phone, email) VALUES
  (1, 'Marguerite Vanderholt', '+1 415 555 0142', 'marguerite@example.com'),
  (2, 'Bartholomew Quince', '+44 20 7946 0958', 'bquince@example.org');
INSERT OR REPLACE INTO tickets (id, shop, customer_id, status) VALUES
  (2506, 'swicked', 1, 'open'),
  (2507, 'swicked', 2, 'open'),
  (2508, 'swicked', 2, 'open'),
  (2509, 'swicked', 1, 'open'), (2510, 'swicked', 2, 'open'), (2511, 'swicked', 1, 'open'),
  (2512, 'swicked', 2, 'open'), (2513, 'swicked', 1, 'open'), (2514, 'swicked', 2, 'open'),
  (2515, 'swicked', 1, 'open'), (2516, 'swicked', 2, 'open'), (2517, 'swicked', 1, 'closed'),
  (3001, 'demo', 1, 'open'),
  (3002, 'demo', 2, 'open');
INSERT OR REPLACE INTO ticket_lines (id, ticket_id, description, qty, unit_cents) VALUES
  (1, 2506, 'Screen replacement', 1, 12900),
  (2, 2506, 'Labour', 2, 4500),
  (3, 2507, 'Battery', 1, 5900);
INSERT OR REPLACE INTO transactions (id, ticket_id, amount_cents) VALUES
  (1, 2506, 20000);
