typedef int csv_table_placeholder_;
